"""The kubectl the tests run: hack/kubectl.sh's choice, made once per process."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def kubectl_command() -> list[str]:
    """The pinned build when it is cached, run directly (the tests run kubectl often enough that a shell
    per call showed in the CPU they take), else hack/kubectl.sh, which finds or builds one."""
    versions = (REPO / "hack" / "lib" / "versions.sh").read_text()
    pinned = re.search(r"^KUBE_VERSION=(\S+)", versions, re.MULTILINE)
    cache = Path(
        os.environ.get("MARINA_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "marina"
    )
    if pinned is not None and os.access(cache / f"bin-{pinned.group(1)}" / "kubectl", os.X_OK):
        return [str(cache / f"bin-{pinned.group(1)}" / "kubectl")]
    return ["bash", str(REPO / "hack" / "kubectl.sh")]
