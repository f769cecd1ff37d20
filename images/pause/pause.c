/* The pod sandbox's first process: holds the pod's namespaces, reaps zombies, exits on SIGINT/SIGTERM.
 * Built statically by hack/build-binaries.sh (same job as Kubernetes' build/pause/linux/pause.c). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int signo) { _exit(0); (void)signo; }

static void on_child(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0) {
    perror("sigaction");
    return 1;
  }
  if (getpid() != 1) fprintf(stderr, "pause: warning: not running as PID 1\n");
  for (;;) pause();
}
