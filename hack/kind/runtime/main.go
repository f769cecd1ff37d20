// Command marina-kind-runc is an OCI runtime for the Docker engine that runs kind's nodes on hosts where
// root lacks some capabilities (here CAP_SYS_RESOURCE). Docker 20.10 gives a --privileged container every
// capability it knows (moby#42906), and runc then fails with "unable to apply caps: operation not
// permitted". Before handing over to runc, this wrapper removes from the container's (create, run) or
// process's (exec) capability sets every capability that is missing from its own bounding set, so a
// privileged container gets exactly what the engine has, as newer engines do (moby#42933). Every other
// argument and the rest of the spec pass through unchanged.
//
// Registered with dockerd: --add-runtime marina-kind-runc=/path/marina-kind-runc --default-runtime ...
// The real runc is $MARINA_KIND_RUNC, else /usr/sbin/runc, else runc on PATH.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capNames is linux/capability.h in bit order.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// missingCaps returns the capabilities absent from this process's bounding set.
func missingCaps() (map[string]bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if hex, ok := strings.CutPrefix(scanner.Text(), "CapBnd:"); ok {
			bounding, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return nil, err
			}
			missing := map[string]bool{}
			for bit, name := range capNames {
				if bounding&(1<<uint(bit)) == 0 {
					missing[name] = true
				}
			}
			return missing, nil
		}
	}
	return nil, fmt.Errorf("no CapBnd in /proc/self/status")
}

// dropCaps rewrites the JSON file's capability sets (at capsPath inside it) without the missing ones.
// It returns whether anything changed; other fields are kept as they are.
func dropCaps(file string, capsPath []string, missing map[string]bool) (bool, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return false, fmt.Errorf("%s: %w", file, err)
	}
	node := doc
	for _, key := range capsPath {
		next, ok := node[key].(map[string]any)
		if !ok {
			return false, nil
		}
		node = next
	}
	changed := false
	for set, value := range node {
		list, ok := value.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if name, ok := c.(string); ok && missing[name] {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		node[set] = kept
	}
	if !changed {
		return false, nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return false, err
	}
	info, err := os.Stat(file)
	if err != nil {
		return false, err
	}
	tmp := file + ".marina-kind-runc"
	if err := os.WriteFile(tmp, out, info.Mode().Perm()); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, file)
}

// flagValue finds "--name value", "--name=value" or "-short value" among args.
func flagValue(args []string, names ...string) string {
	for i, arg := range args {
		for _, name := range names {
			if arg == name && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(arg, name+"="); ok {
				return v
			}
		}
	}
	return ""
}

// command returns runc's subcommand and the arguments after it (global flags come before it).
func command(args []string) (string, []string) {
	withValue := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if strings.HasPrefix(arg, "-") {
			if withValue[arg] {
				i++
			}
			continue
		}
		return arg, args[i+1:]
	}
	return "", nil
}

func realRunc() string {
	if path := os.Getenv("MARINA_KIND_RUNC"); path != "" {
		return path
	}
	if _, err := os.Stat("/usr/sbin/runc"); err == nil {
		return "/usr/sbin/runc"
	}
	if path, err := exec.LookPath("runc"); err == nil {
		return path
	}
	return "runc"
}

func main() {
	args := os.Args[1:]
	sub, rest := command(args)
	var file string
	var capsPath []string
	switch sub {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		file, capsPath = filepath.Join(bundle, "config.json"), []string{"process", "capabilities"}
	case "exec":
		file, capsPath = flagValue(rest, "--process", "-p"), []string{"capabilities"}
	}
	if file != "" {
		missing, err := missingCaps()
		if err == nil && len(missing) > 0 {
			_, err = dropCaps(file, capsPath, missing)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "marina-kind-runc: %v\n", err)
			os.Exit(1)
		}
	}
	runc := realRunc()
	if err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "marina-kind-runc: exec %s: %v\n", runc, err)
		os.Exit(1)
	}
}
