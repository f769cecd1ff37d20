"""Which shard this pod is: the commands an Indexed Job runs (prepare, train, predict) ask alike."""

from __future__ import annotations

import os

from marina.contract import SpecError

#: Kubernetes gives each pod of an Indexed Job its index here.
JOB_INDEX_ENV = "JOB_COMPLETION_INDEX"


def shard_index(given: int | None, shards: int) -> int:
    """This pod's shard: `--shard-index` when given, else the index Kubernetes gives the pod."""
    if given is not None:
        return given
    raw = os.environ.get(JOB_INDEX_ENV, "")
    if not raw.isdigit() or int(raw) >= shards:
        raise SpecError(f"--shard-index: not given and ${JOB_INDEX_ENV} is {raw!r}, not in [0, {shards - 1}]")
    return int(raw)
