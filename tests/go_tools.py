"""The GitOps tools the tests run, built from Go modules by hack/build-binaries.sh (a pytest plugin of
conftest.py): Marina's Argo CD health runner and kstatus printer (hack/tools/*, around gopher-lua and
cli-utils), Helm, and kustomize where no kubectl is at hand. Each fixture builds its tool once into the
cache and FAILS, never skips, without Go."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: target of hack/build-binaries.sh -> (the versions.sh pin naming its cache folder, the binary)
TOOLS = {
    "argocd_health": ("GOPHER_LUA_VERSION", "argocd-health"),
    "kstatus": ("CLI_UTILS_VERSION", "kstatus"),
    "helm": ("HELM_VERSION", "helm"),
    "kustomize": ("KUSTOMIZE_VERSION", "kustomize"),
}


def cache() -> Path:
    return Path(
        os.environ.get("MARINA_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "marina"
    )


def tool_path(target: str) -> Path:
    pin, binary = TOOLS[target]
    match = re.search(rf"^{pin}=(\S+)", (REPO / "hack" / "lib" / "versions.sh").read_text(), re.MULTILINE)
    assert match, f"hack/lib/versions.sh does not pin {pin}"
    return cache() / f"{binary}-{match.group(1)}" / binary


def go_tool(target: str) -> Path:
    """The tool, built (or found current) by `hack/build-binaries.sh TARGET`."""
    path = tool_path(target)
    build = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh"), target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if build.returncode != 0 or not path.exists():
        pytest.fail(
            f"`bash hack/build-binaries.sh {target}` failed (exit {build.returncode}), no {path}:\n"
            f"{build.stderr[-3000:]}"
        )
    return path


@pytest.fixture(scope="session")
def argocd_health() -> Path:
    """hack/tools/argocd-health: Argo CD's Lua environment around gopher-lua (test and eval)."""
    return go_tool("argocd_health")


@pytest.fixture(scope="session")
def kstatus() -> Path:
    """hack/tools/kstatus: cli-utils' status.Compute over objects on stdin or in files."""
    return go_tool("kstatus")


@pytest.fixture(scope="session")
def helm() -> Path:
    return go_tool("helm")


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    """`kubectl kustomize` (kubectl on PATH, else the cluster's cached build), else kustomize built at the
    version kubectl v1.33 embeds."""
    versions = (REPO / "hack" / "lib" / "versions.sh").read_text()
    match = re.search(r"^KUBE_VERSION=(\S+)", versions, re.MULTILINE)
    cached = cache() / f"bin-{match.group(1) if match else ''}" / "kubectl"
    kubectl = shutil.which("kubectl") or (str(cached) if cached.exists() else None)
    return [kubectl, "kustomize"] if kubectl else [str(go_tool("kustomize")), "build"]
