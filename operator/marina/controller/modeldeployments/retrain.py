"""The retrain trigger (spec.monitoring.onDrift Retrain, spec.retraining): whether a trigger fires and may
refresh now (`retraining`'s pure rules), which Dataset to refresh, and what that writes: the record in
status.retraining, the Dataset's refresh annotation and the event. `monitor.tick` writes the record
first, so a crash in between never exceeds the limits, and refreshes only once it is written."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.contract import API_VERSION
from marina.controller.kube.client import KubeApi
from marina.controller.modeldeployments import monitoring, retraining
from marina.controller.modeldeployments.performance import Assessment
from marina.controller.modeldeployments.spec import ModelDeploymentSpec
from marina.controller.shared.plan import Post
from marina.system.clock import parse_timestamp


@dataclass(frozen=True)
class Trigger:
    """What a fired trigger writes: status.retraining, then (when it refreshes) the Dataset's annotation."""

    fields: Mapping[str, Any]
    event: Post
    refresh: Mapping[str, Any] | None = None  # applied once `fields` are written
    reason: str = ""


def trigger(
    kube: KubeApi,
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    judged: monitoring.Assessment | None,
    now: datetime.datetime,
    degraded: Assessment | None = None,
) -> Trigger | None:
    """Decide on this tick's drift assessment (`judged`, None when no check ran), its live-accuracy
    verdict (`degraded`, likewise) and the schedule; the TrainingJob and its Dataset are read only when a
    trigger fires within the limits."""
    record = retraining.Record.of(body.get("status"))
    created = parse_timestamp(str(body["metadata"].get("creationTimestamp") or retraining.stamp(now)))
    drifted = judged is not None and judged.level is monitoring.Level.DRIFTED
    worse = degraded is not None and degraded.status == "True"
    reason = retraining.due(spec, record, drifted, now, created, worse)
    if reason is None:
        return None
    held = retraining.hold(record, spec.retraining, now)
    target = held or dataset_to_refresh(kube, str(body["metadata"]["namespace"]), spec)
    return decide(body, spec, record, reason, target, _why(reason, judged, degraded), now)


def _why(reason: str, judged: monitoring.Assessment | None, degraded: Assessment | None) -> str:
    if reason == retraining.DRIFT and judged is not None:
        return judged.message
    if reason == retraining.DEGRADED and degraded is not None:
        return degraded.message
    return "the schedule"


def dataset_to_refresh(kube: KubeApi, namespace: str, spec: ModelDeploymentSpec) -> str | retraining.Hold:
    """The Dataset the served TrainingJob trains on, or why there is none to refresh."""
    name = spec.model.training_job
    training = kube.get(API_VERSION, "TrainingJob", namespace, name or "") if name else None
    dataset = ((training or {}).get("spec") or {}).get("dataset") or {}
    if training is None or not dataset.get("name"):
        return retraining.Hold(retraining.NO_DATASET, f"TrainingJob {name} not found or names no Dataset")
    if dataset.get("version"):
        return retraining.Hold(
            retraining.NO_DATASET,
            f"TrainingJob {name} pins dataset version {dataset['version']}: a refresh would not retrain it",
        )
    if kube.get(API_VERSION, "Dataset", namespace, str(dataset["name"])) is None:
        return retraining.Hold(retraining.NO_DATASET, f"Dataset {dataset['name']} not found")
    return str(dataset["name"])


def decide(
    body: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    record: retraining.Record,
    reason: str,
    target: str | retraining.Hold,
    why: str,
    now: datetime.datetime,
) -> Trigger | None:
    """A refresh of Dataset `target`, or the record of a trigger held (an event when the reason for
    holding changes; None when it is held for the reason already recorded)."""
    if isinstance(target, retraining.Hold):
        if record.held == target.reason:
            return None
        fields = retraining.held(reason, target, now)
        warning = target.reason == retraining.NO_DATASET
        message = f"{reason} trigger held: {fields['held']['message']}"
        return Trigger(fields, Post("Warning" if warning else "Normal", "RetrainHeld", message))
    meta = body["metadata"]
    token = retraining.token(meta["name"], now)
    fields = retraining.triggered(record, reason, why, target, token, now, spec.retraining)
    said = (
        f"{reason}: refreshed Dataset {target} ({why}); refresh {fields['countToday']} of "
        f"{spec.retraining.max_per_day} today, next allowed at {fields['nextAllowed']}"
    )
    refresh = retraining.refresh(meta["namespace"], target, fields["refresh"])
    return Trigger(fields, Post("Normal", "RetrainTriggered", said), refresh, reason)
