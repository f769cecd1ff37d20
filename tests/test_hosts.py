"""No package host or image registry is written in the repository: every file git tracks is searched for
the hosts of Debian and Ubuntu archives, image registries and language package indexes, and each hit is
reported as file:line. Where packages come from is the machine's business (its apt sources, pip and Go
configuration, its own images); hack/lib/common.sh's debian_mirror reads the Debian archive from apt's
configuration, which the second half of this file checks against apt folders written here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMON = REPO / "hack" / "lib" / "common.sh"

#: Host names (and image-reference prefixes) of package archives, registries and indexes.
HOSTS = re.compile(
    "|".join(
        [
            # Debian and Ubuntu archives
            r"\b(deb|security|snapshot|ftp|cdimage|httpredir)\.debian\.org",
            r"\bftp\.[a-z]{2}\.debian\.org",
            r"\b(archive|security|ports|[a-z]{2}\.archive)\.ubuntu\.com",
            r"\bdl-cdn\.alpinelinux\.org",
            # image registries, and Docker Hub as the first part of an image reference
            r"\bregistry-1\.docker\.io",
            r"\bindex\.docker\.io",
            r"\bhub\.docker\.com",
            r"(?<![\w.-])docker\.io/",
            r"\bghcr\.io",
            r"\bquay\.io",
            r"\b([a-z0-9-]+\.)?gcr\.io",
            r"\bregistry\.k8s\.io",
            r"\b[a-z0-9-]+\.pkg\.dev",
            r"\bmcr\.microsoft\.com",
            r"\bpublic\.ecr\.aws",
            r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com",
            # other package hosts
            r"\bdownload\.docker\.com",
            r"\bpackages\.cloud\.google\.com",
            r"\bapt\.kubernetes\.io",
            r"\bpkgs\.k8s\.io",
            r"\bdl\.k8s\.io",
            r"\bdeb\.nodesource\.com",
            r"\bdl\.min\.io",
            # language package indexes and proxies
            r"\b(pypi|test\.pypi)\.org",
            r"\bpypi\.python\.org",
            r"\bfiles\.pythonhosted\.org",
            r"\b(proxy|sum)\.golang\.org",
            r"\bgoproxy\.(io|cn)",
            r"\bregistry\.npmjs\.org",
            r"\bregistry\.yarnpkg\.com",
            r"\brepo1?\.maven\.(apache\.)?org",
            r"\brubygems\.org",
            r"\b(static\.)?crates\.io",
            # release downloads
            r"\b(raw|objects)\.githubusercontent\.com",
            r"\bgithub\.com/[^\s]+/releases/download",
        ]
    ),
    re.IGNORECASE,
)

#: (path, reason) for a file that must name one of HOSTS; empty: nothing does.
ALLOWED: dict[str, str] = {}


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_no_package_host_is_written_in_the_repository() -> None:
    hits = []
    for name in tracked_files():
        path = REPO / name
        if name in ALLOWED or not path.is_file():  # deleted in the work tree, or a submodule
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            found = sorted({match.group(0) for match in HOSTS.finditer(line)})
            if found:
                hits.append(f"{name}:{number}: {', '.join(found)}   {line.strip()[:160]}")
    if hits:
        pytest.fail("package or registry hosts written in the repository:\n" + "\n".join(hits), pytrace=False)


# debian_mirror, against apt folders written here (MARINA_APT_ROOT), for the suite hack/images.sh bootstraps.

MAIN = "http://main.example/debian"  # the archive each apt folder below holds for bookworm

SECURITY_AND_MAIN = """\
Types: deb
URIs: http://main.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://source.example/debian
Suites: bookworm
Components: main

Types: deb
# a comment inside a stanza
URIs: http://main.example/debian
  http://second.example/debian
Suites: bookworm
  bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_ - Official amd64 DVD Binary-1]/ bookworm contrib main
deb http://other.example/apt cloud-sdk-bookworm main
deb [arch=amd64 signed-by=/etc/apt/d.gpg] http://main.example/debian-security bookworm-security main
deb-src http://source.example/debian bookworm main
deb [ arch=amd64 signed-by=/usr/share/keyrings/d.gpg ] http://main.example/debian bookworm main
deb http://second.example/debian bookworm main
"""


def debian_mirror(apt_root: Path, files: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (apt_root / name).parent.mkdir(parents=True, exist_ok=True)
        (apt_root / name).write_text(text)
    environment = {k: v for k, v in os.environ.items() if k != "MARINA_DEBIAN_MIRROR"}
    environment.update(MARINA_APT_ROOT=str(apt_root), **env)
    return subprocess.run(
        ["bash", "-c", 'source "$1" && debian_mirror bookworm', "bash", str(COMMON)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"sources.list.d/debian.sources": SECURITY_AND_MAIN}, MAIN, id="deb822"),
        pytest.param({"sources.list": SECURITY_AND_MAIN}, MAIN, id="deb822-sources.list"),
        pytest.param({"sources.list": ONE_LINE}, MAIN, id="one-line"),
        pytest.param({"sources.list.d/debian.list": ONE_LINE}, MAIN, id="one-line-.list"),
        pytest.param(
            {
                "sources.list": ONE_LINE.replace("main.example", "one-line.example"),
                "sources.list.d/a.sources.disabled-by-admin": SECURITY_AND_MAIN.replace("main.", "off."),
                "sources.list.d/b.list.disabled": "deb http://off.example/debian bookworm main\n",
                "sources.list.d/c.sources": "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\n"
                "Suites: bookworm\nComponents: main\n",
                "sources.list.d/debian.sources": SECURITY_AND_MAIN,
            },
            MAIN,
            id="deb822-first-disabled-skipped",
        ),
    ],
)
def test_debian_mirror_reads_apt_sources(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    done = debian_mirror(tmp_path, files)
    assert (done.returncode, done.stdout) == (0, expected + "\n"), done.stderr


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({}, id="no-apt-folder"),
        pytest.param(
            {
                "sources.list": "# deb http://commented.example/debian bookworm main\n",
                "sources.list.d/debian.sources.disabled": SECURITY_AND_MAIN,
                "sources.list.d/debian.list.disabled-by-admin": ONE_LINE,
                "sources.list.d/security.sources": SECURITY_AND_MAIN.split("\n\n")[0],
                "sources.list.d/other.list": "deb http://other.example/apt cloud-sdk-bookworm main\n",
            },
            id="only-disabled-security-or-other-suites",
        ),
    ],
)
def test_debian_mirror_fails_saying_what_to_set(tmp_path: Path, files: dict[str, str]) -> None:
    done = debian_mirror(tmp_path, files)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "no Debian archive for bookworm" in done.stderr and "MARINA_DEBIAN_MIRROR" in done.stderr


def test_marina_debian_mirror_overrides_apt_sources(tmp_path: Path) -> None:
    override = "file:///srv/debian"
    done = debian_mirror(
        tmp_path, {"sources.list.d/debian.sources": SECURITY_AND_MAIN}, MARINA_DEBIAN_MIRROR=override
    )
    assert (done.returncode, done.stdout) == (0, override + "\n"), done.stderr
