"""spec.logging of a ModelDeployment: defaults, bounds naming the field, and the serving pods' flags."""

from __future__ import annotations

from typing import Any

import pytest

from marina import storage
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import manifests as modeldeployment_manifests
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.spec import Logging
from marina.controller.shared import builders
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.credentials import StorageIdentities
from marina.controller.shared.fields import InvalidSpec
from marina.serving import command as serve_command

MODEL = {"trainingJob": "t"}
OWNER = builders.Owner("ModelDeployment", "md", "team-a", "uid-1")
SETTINGS = Settings(probe_storage=False, s3_bucket="marina")
SERVED = ModelReference("s3://marina/models/team-a/t/model.json", "c" * 64)


def _args(spec: dict[str, Any], canary: bool = False) -> list[str]:
    parsed = modeldeployment_spec.parse({"model": MODEL, **spec})
    if canary:
        built = modeldeployment_manifests.canary_deployment(SETTINGS, OWNER, parsed, SERVED, 1)
    else:
        built = modeldeployment_manifests.deployment(SETTINGS, OWNER, parsed, SERVED)
    args: list[str] = built["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_logging_is_off_by_default() -> None:
    spec = modeldeployment_spec.parse({"model": MODEL})
    assert spec.logging == Logging(sample_rate=0.0, flush_rows=10_000, flush_seconds=60, keep_days=None)
    assert not spec.logging.enabled


def test_logging_values_are_read() -> None:
    logging = {"sampleRate": 0.25, "flushRows": 500, "flushSeconds": 5, "keepDays": 30}
    assert modeldeployment_spec.parse({"model": MODEL, "logging": logging}).logging == Logging(
        0.25, 500, 5, 30
    )


@pytest.mark.parametrize(
    ("logging", "field", "words"),
    [
        ({"sampleRate": 1.5}, "spec.logging.sampleRate", "[0, 1]"),
        ({"sampleRate": -0.1}, "spec.logging.sampleRate", "[0, 1]"),
        ({"sampleRate": "all"}, "spec.logging.sampleRate", "number"),
        ({"flushRows": 99}, "spec.logging.flushRows", "[100, 1000000]"),
        ({"flushSeconds": 0}, "spec.logging.flushSeconds", "[1, 3600]"),
        ({"keepDays": 0}, "spec.logging.keepDays", "[1, 3660]"),
        ("on", "spec.logging", "object"),
    ],
)
def test_logging_errors_name_the_field(logging: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        modeldeployment_spec.parse({"model": MODEL, "logging": logging})
    assert caught.value.field == field and words in caught.value.problem


def test_the_server_gets_no_log_flags_while_logging_is_off() -> None:
    for spec in ({}, {"logging": {}}, {"logging": {"sampleRate": 0, "keepDays": 3}}):
        assert not [arg for arg in _args(spec) if arg.startswith(("--log-", "--track"))]


def test_the_server_logs_under_the_deployments_own_prefix_with_the_spec_settings() -> None:
    args = _args({"logging": {"sampleRate": 0.1, "flushRows": 2000, "flushSeconds": 15}})
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--log-prefix"] == "s3://marina/logs/team-a/md/"
    assert float(flags["--log-sample-rate"]) == 0.1
    assert flags["--log-flush-rows"] == "2000" and flags["--log-flush-seconds"] == "15"
    assert "--track" not in flags  # the stable track is the server's default


def test_the_flags_mean_to_the_server_what_the_spec_says() -> None:
    """What the manifest builds, the server's own parser reads back into its log settings."""
    args = _args({"logging": {"sampleRate": 0.3, "flushRows": 700, "flushSeconds": 9}}, canary=True)
    parser = serve_command.argparse.ArgumentParser()
    serve_command.configure(parser)
    settings = serve_command.log_settings(parser.parse_args(args[1:]))
    assert settings is not None
    assert (settings.prefix, settings.sample_rate, settings.flush_rows, settings.flush_seconds) == (
        "s3://marina/logs/team-a/md/",
        0.3,
        700,
        9.0,
    )
    assert settings.track == "canary"


def test_the_namespace_identity_may_write_its_logs_area(monkeypatch: pytest.MonkeyPatch) -> None:
    """The serving pods write with the namespace's identity: its own areas include logs/<namespace>/."""
    seen: dict[str, Any] = {}

    def ensure(namespace: str, own: list[str], shared: Any, known: Any) -> None:
        seen["own"] = own

    monkeypatch.setattr(storage, "ensure_identity", ensure)
    StorageIdentities().ensure(SETTINGS, "team-a", None)
    assert "s3://marina/logs/team-a/" in seen["own"]
