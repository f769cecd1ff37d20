"""Retention of a ModelDeployment's payload logs and feedback (`spec.logging.keepDays`).

The serving pods write `date=YYYY-MM-DD/` folders under `s3://<bucket>/logs/<namespace>/<name>/predictions/`
and `.../feedback/` with the namespace's identity, which may not delete. The operator (MinIO's root
credentials) deletes the folders of days more than keepDays before today (UTC; today is day 0, so
keepDays 1 keeps today and yesterday), once an hour, and only under this ModelDeployment's own prefix:
a name that is not a `date=` folder is left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from marina import storage
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared.fields import InvalidSpec
from marina.data.served import FEEDBACK, PREDICTIONS

#: How often the operator looks for expired days.
TICK_SECONDS = 3600.0
_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
log = logging.getLogger("marina.controller")


def keep_days(body: Mapping[str, Any]) -> int | None:
    """The object's spec.logging.keepDays; None when absent or the spec is invalid (its status says so)."""
    try:
        return modeldeployment_spec.parse(body.get("spec")).logging.keep_days
    except InvalidSpec:
        return None


def expired(folders: Sequence[str], keep_days: int, today: date) -> list[str]:
    """The `date=YYYY-MM-DD` names among `folders` of days before `today - keep_days`."""
    oldest = today - timedelta(days=keep_days)
    found = []
    for folder in folders:
        match = _DAY.fullmatch(folder)
        if match is None:
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day < oldest:
            found.append(folder)
    return found


def expire(settings: Settings, namespace: str, name: str, keep_days: int, today: date) -> list[str]:
    """Delete the expired days of one ModelDeployment's logs and feedback; the folders deleted."""
    prefix = settings.logs_prefix(namespace, name)
    deleted: list[str] = []
    try:
        for stream in (PREDICTIONS, FEEDBACK):
            folder = f"{prefix}{stream}/"
            for day in expired(storage.list_folder(folder), keep_days, today):
                objects = [found.uri for found in storage.list_objects(f"{folder}{day}/")]
                if objects:
                    storage.delete_objects(objects)
                deleted.append(f"{folder}{day}/")
    except storage.StorageError as error:  # the next tick tries again
        log.warning("log retention under %s: %s", prefix, error)
    if deleted:
        log.info("log retention under %s: deleted %s", prefix, ", ".join(deleted))
    return deleted
