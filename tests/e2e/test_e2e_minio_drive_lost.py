"""One of MinIO's four drives loses its data, and nothing is lost: MinIO erasure-codes every object over
its drives (manifests/minio), so with a Dataset and a TrainingJob's model stored:

1. drive 1's folder on the host is emptied (everything, its format.json too) and made unreadable to
   MinIO (mode 000: the drive is gone, not yet replaced), so what follows runs on three drives;
2. every object of the namespace's datasets and models reads back with the bytes it had, and the dataset
   and model verify against the sha256 their manifests record, through Marina's own readers;
3. a new TrainingJob on the same Dataset trains and stores a model that verifies, with the drive still
   gone (checked before and after);
4. the drive comes back empty (mode 0750, as a replaced disk would): MinIO formats it with its old
   identity and heals it, which its admin API states (every drive "ok", none healing, the same
   identities as before, all online) within HEAL_SECONDS, and the folder again holds every object
   (its xl.meta), the ones written while it was gone too;
5. drive 2's folder is replaced by an empty one and MinIO's pod is restarted over it: everything reads
   and verifies again, and MinIO reports that drive healed as well.

It needs the local cluster (manifests/minio/local-volume: the drives are folders on this host); on another
cluster it fails saying so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from marina.data import dataset
from marina.model import artifact
from minio_drives import Drive, drives, not_healed

# Runs alone (serial): it takes MinIO's drives away and restarts MinIO, which every other test uses.
pytestmark = pytest.mark.serial

SYSTEM = "marina-system"
MINIO_UID = 65532  # manifests/minio/base/deployment.yaml's runAsUser, hack/minio-up.sh's folder owner
HEAL_SECONDS = 180
LOST, REPLACED = 1, 2  # the drives taken away: /data1 while MinIO runs, /data2 across a restart

Objects = dict[tuple[str, str], str]  # (bucket, key) -> sha256 of the object's bytes


def s3_client(minio: Any) -> Any:
    from minio import Minio

    url = urlsplit(minio.url)
    return Minio(url.netloc, minio.access_key, minio.secret_key, secure=url.scheme == "https")


def admin_info(minio: Any) -> dict[str, Any]:
    """MinIO's server info (GET /minio/admin/v3/info), with its drives' states."""
    from minio.credentials.providers import StaticProvider
    from minio.minioadmin import MinioAdmin

    url = urlsplit(minio.url)
    admin = MinioAdmin(
        endpoint=url.netloc,
        credentials=StaticProvider(minio.access_key, minio.secret_key),
        secure=url.scheme == "https",
    )
    return dict(json.loads(admin.info()))


def answers(minio: Any) -> bool:
    """MinIO's readiness endpoint answers 200 (it has read and write quorum)."""
    try:
        with urllib.request.urlopen(f"{minio.url}/minio/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def drive_folder(cluster: Any, index: int) -> Path:
    """Drive `index`'s folder on this host: its PersistentVolume's hostPath."""
    pv = f"marina-minio-drive-{index}"
    path = cluster.kubectl("get", "pv", pv, "--ignore-not-found", "-o", "jsonpath={.spec.hostPath.path}")
    if not cluster.local or not path.strip():
        pytest.fail(
            f"this test empties MinIO's drive folders on this host: it needs the local cluster's hostPath "
            f"volumes (PV {pv} of manifests/minio/local-volume), not found here",
            pytrace=False,
        )
    return Path(path.strip())


def empty(folder: Path) -> None:
    """Everything in a drive's folder gone (MinIO's format.json and every object's shards)."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def stored(minio: Any, prefixes: Iterable[tuple[str, str]]) -> Objects:
    """Every object under the prefixes (hidden names too) with the sha256 of what it reads as now."""
    client = s3_client(minio)
    found: Objects = {}
    for bucket, prefix in prefixes:
        for item in client.list_objects(bucket, prefix=prefix, recursive=True):
            found[(bucket, item.object_name)] = read_sha256(client, bucket, item.object_name)
    return found


def read_sha256(client: Any, bucket: str, key: str) -> str:
    response = client.get_object(bucket, key)
    try:
        return hashlib.sha256(response.read()).hexdigest()
    finally:
        response.close()
        response.release_conn()


def unchanged(minio: Any, objects: Objects) -> list[str]:
    """The objects that no longer read back with the bytes they had (or not at all)."""
    client = s3_client(minio)
    changed = []
    for (bucket, key), digest in sorted(objects.items()):
        try:
            now = read_sha256(client, bucket, key)
        except Exception as error:
            changed.append(f"{bucket}/{key}: {error}")
            continue
        if now != digest:
            changed.append(f"{bucket}/{key}: sha256 {now}, was {digest}")
    return changed


def verify(dataset_uri: str, *models: dict[str, Any]) -> None:
    """The dataset (description, both splits, every part by the sha256 its name carries) and the models
    (by the sha256 their TrainingJobs record) read and verify through Marina's own readers."""
    found = dataset.load(dataset_uri)
    for split in ("train", "test"):
        for position in range(len(found.part_records(split))):
            found.raw_part(split, position)
    for model in models:
        artifact.load(model["uri"], model["sha256"])


def not_on_drive(folder: Path, objects: Iterable[tuple[str, str]]) -> list[str]:
    """The objects whose metadata file (MinIO keeps <bucket>/<key>/xl.meta on each drive) the folder lacks."""
    return [
        f"{bucket}/{key}"
        for bucket, key in sorted(objects)
        if not (folder / bucket / key / "xl.meta").is_file()
    ]


def wait_healed(minio: Any, before: dict[str, Drive], folder: Path, objects: Objects) -> float:
    """Seconds until MinIO's admin API reports every drive of `before` whole again and `folder` holds every
    object; fails with what is still missing after HEAL_SECONDS. Prints the states the drives went through."""
    started = time.monotonic()
    seen: list[str] = []
    reasons: list[str] = ["not asked yet"]
    while time.monotonic() - started < HEAL_SECONDS:
        try:
            info = admin_info(minio)
            reasons = not_healed(info, before)
        except Exception as error:  # MinIO busy or restarting: ask again
            reasons = [f"admin API: {error}"]
        reasons += [f"not yet on the drive: {name}" for name in not_on_drive(folder, objects)[:5]]
        if not seen or seen[-1] != "; ".join(reasons[:2]):
            seen.append("; ".join(reasons[:2]))
        if not reasons:
            elapsed = time.monotonic() - started
            print(f"healed after {elapsed:.1f}s; on the way: {seen}")
            return elapsed
        time.sleep(2)
    pytest.fail(
        f"MinIO did not report the drive healed within {HEAL_SECONDS}s: {reasons}; seen: {seen}",
        pytrace=False,
    )


def test_a_lost_drive_loses_nothing_and_minio_heals_it(
    marina: Any, cluster: Any, minio: Any, storage_env: None
) -> None:
    lost, replaced = drive_folder(cluster, LOST), drive_folder(cluster, REPLACED)
    data = marina.sample("Dataset")
    first = marina.sample("TrainingJob")
    marina.apply(data, first)
    dataset_status = marina.wait_ready("dataset", data["metadata"]["name"], timeout=600)
    first_model = marina.wait_ready("trainingjob", first["metadata"]["name"], timeout=600)["model"]
    bucket = dataset_status["uri"].removeprefix("s3://").split("/", 1)[0]
    prefixes = [(bucket, f"datasets/{marina.namespace}/"), (bucket, f"models/{marina.namespace}/")]
    objects = stored(minio, prefixes)
    before = drives(admin_info(minio))
    endpoint = f"/data{LOST}"
    assert len(before) == 4 and endpoint in before, f"MinIO's drives: {before}"
    assert not_healed(admin_info(minio), before) == []
    assert not not_on_drive(lost, objects), "the drive did not hold every object before it was emptied"
    print(f"{len(objects)} objects stored; drives {sorted(before)}")

    # 1-3: drive 1 gone; everything reads and verifies, and training goes on.
    empty(lost)
    os.chmod(lost, 0o000)
    try:
        assert unchanged(minio, objects) == []
        verify(dataset_status["uri"], first_model)
        marina.wait_for(
            f"MinIO to see drive {endpoint} gone",
            lambda: drives(admin_info(minio))[endpoint].state != "ok",
            timeout=60,
        )
        second = marina.sample("TrainingJob")
        second["metadata"]["name"] = "without-a-drive"
        second["spec"]["model"]["alpha"] = 0.5  # another model: a new object, written on three drives
        marina.apply(second)
        second_model = marina.wait_ready("trainingjob", "without-a-drive", timeout=600)["model"]
        verify(dataset_status["uri"], first_model, second_model)
        state = drives(admin_info(minio))[endpoint].state
        assert state != "ok", f"drive {endpoint} came back ({state}) before the training ended"
        print(f"trained on three drives; drive {endpoint} {state}")
    finally:
        os.chmod(lost, 0o750)

    # 4: the drive back, empty: MinIO heals it.
    objects = stored(minio, prefixes)  # with the model written while the drive was gone
    wait_healed(minio, before, lost, objects)
    assert unchanged(minio, objects) == []

    # 5: another drive's folder replaced by an empty one, MinIO restarted over it.
    shutil.rmtree(replaced)
    replaced.mkdir(mode=0o750)
    os.chown(replaced, MINIO_UID, MINIO_UID)
    cluster.kubectl("-n", SYSTEM, "delete", "pod", "-l", "app.kubernetes.io/name=minio", "--wait=true")
    cluster.kubectl("-n", SYSTEM, "rollout", "status", "deployment/minio", "--timeout=180s", timeout=200)
    marina.wait_for("MinIO to answer again", lambda: answers(minio), timeout=120)
    assert unchanged(minio, objects) == []
    verify(dataset_status["uri"], first_model, second_model)
    wait_healed(minio, before, replaced, objects)
    assert not not_on_drive(lost, objects)
