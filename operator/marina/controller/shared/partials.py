"""The partial results of sharded runs (prepare or train), deleted once a run's result is the status.

Each shard of a run writes its partial result under `<resource prefix>/partials/<inputs digest>/`: one
`shard-<i>-of-<N>-<sha256>.json` and Parquet tables named `<sha256>.parquet` (its sample, its held rows).
Only the reduce of that run reads them. Once the resource is Ready with a run's result, nothing will read
them, nor those of any earlier run:
- a Ready resource with the same inputs digest never runs the reduce again, and a new input is a new
  digest and a new folder;
- a run abandoned midway (its inputs changed while its shards ran) has no shard Job left: when a run's
  shards are done the operator deletes the shard Jobs of every other digest (`jobs.forget_old_jobs`),
  before that run's reduce, so before its result can be the status. Its reduce, if it had started, is
  deleted the same way. A shard of such a run may write for a few seconds more while its pod stops;
  what it leaves goes with the next finished run.

So they go then, with the operator's root credentials (namespace identities cannot delete), as
retention deletes versions:
- only on the reconcile that makes a sharded run's result the status (`shards` above 1 in it), not on
  every reconcile of a Ready resource: one listing per finished sharded run, none for a run in one pod;
- only objects one folder down from the resource's `partials/` (a run's folder, any digest) whose names
  are the ones shards write, in the namespace's own area and under no prefix shared with other
  namespaces;
- a failure is a Warning event (`PartialsNotDeleted`) and changes nothing else; the folders then stay
  (they hold kilobytes to a few MiB per shard).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marina import storage
from marina.controller.kube.client import KubeApi
from marina.controller.kube.settings import Settings
from marina.controller.shared import retention
from marina.controller.shared.conditions import Outcome, State, is_ready

#: What shards write (marina.data.shares and marina.data.partials), in a run's folder under `partials/`:
#: their results and their tables.
WRITTEN_BY_SHARDS = re.compile(r"[^/]+/(?:shard-\d+-of-\d+-[0-9a-f]{64}\.json|[0-9a-f]{64}\.parquet)")


def root(prefix: str) -> str:
    """The folder of a resource's runs' partials folders."""
    return f"{prefix}/partials"


def folder(prefix: str, digest: str) -> str:
    """A run's partials folder under a resource's prefix, one per inputs digest, so that the shards of
    two runs never meet."""
    return f"{root(prefix)}/{digest}"


def finished_run(body: Mapping[str, Any], outcome: Outcome) -> str | None:
    """The inputs digest of a sharded run whose result this reconcile has just made the status, if any."""
    digest = outcome.fields.get("inputsHash")
    if outcome.state is not State.READY or int(outcome.fields.get("shards") or 1) < 2:
        return None
    if not isinstance(digest, str) or not digest:
        return None
    status = body.get("status") or {}
    return None if status.get("inputsHash") == digest and is_ready(status) else digest


def collect(
    kube: KubeApi, settings: Settings, body: Mapping[str, Any], outcome: Outcome, purpose: str
) -> None:
    """After a reconcile: delete the partial results of the run that has just finished, and of the runs
    abandoned before it."""
    digest = finished_run(body, outcome)
    if digest is None:
        return
    meta = body["metadata"]
    area = settings.area(purpose, meta["namespace"])
    runs = root(f"{area}{meta['name']}")
    if not retention.deletable_area(runs, area, settings.shared_prefixes):
        return
    try:
        written = retention.named_in(runs, storage.list_objects(runs + "/"), WRITTEN_BY_SHARDS)
        storage.delete_objects([stored.uri for stored, _ in written])
    except storage.StorageError as error:
        kube.event(
            body,
            "Warning",
            "PartialsNotDeleted",
            f"the shards' partial results under {runs}/ stay: {error}; nothing reads them again "
            f"(the run of inputs {digest} has finished)",
        )
