"""A resource reads only its own namespace's storage area, or what a cluster admin shares: however a URI
is spelt (`..`, `//`, percent-escapes, backslashes), it is judged by what it resolves to."""

from __future__ import annotations

from typing import Any

import pytest

from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import storage_area
from marina.controller.shared.conditions import State
from marina.controller.shared.fields import InvalidSpec

SETTINGS = Settings(s3_bucket="marina")
SHARED = Settings(s3_bucket="marina", shared_prefixes=("s3://public-data/", "s3://marina/shared/"))
SHA = "a" * 64


def test_the_layout_is_written_once() -> None:
    assert SETTINGS.csv_areas("team-a") == ("s3://marina/raw/team-a/", "s3://marina/datasets/team-a/")
    assert SETTINGS.model_areas("team-a") == ("s3://marina/models/team-a/",)
    assert SETTINGS.datasets_prefix("team-a", "d") == "s3://marina/datasets/team-a/d"
    assert SETTINGS.models_prefix("team-a", "m") == "s3://marina/models/team-a/m"


def csv_problem(uri: str, settings: Settings = SETTINGS, namespace: str = "probe") -> str | None:
    try:
        storage_area.require_inside(
            "spec.source.csv.uri", uri, settings.csv_areas(namespace), settings.shared_prefixes
        )
    except InvalidSpec as error:
        assert error.field == "spec.source.csv.uri"
        return error.problem
    return None


@pytest.mark.parametrize(
    "uri",
    [
        "s3://marina/raw/probe/houses.csv.gz",
        "s3://marina/raw/probe/2026/01/houses.csv",
        "s3://marina/datasets/probe/houses/0123456789abcdef/train.csv",
    ],
)
def test_the_namespaces_own_area_is_readable(uri: str) -> None:
    assert csv_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "resolves_to"),
    [
        ("s3://marina/raw/houses.csv.gz", None),  # no namespace in the path
        ("s3://marina/raw/default/houses.csv", None),
        ("s3://marina/datasets/default/diabetes/0123456789abcdef/train.csv", None),
        ("s3://marina/models/probe/m/model.json", None),  # a model is not a CSV source
        ("s3://marina/e2e/probe/lines.csv", None),
        ("s3://marina/raw/probe-2/houses.csv", None),  # a prefix ends at a `/`
        ("s3://other/raw/probe/houses.csv", None),
        ("s3://marina/raw/probe/../default/x.csv", "s3://marina/raw/default/x.csv"),
        ("s3://marina/raw/probe/%2e%2e/default/x.csv", "s3://marina/raw/default/x.csv"),
        ("s3://marina/raw/probe/%252e%252e/default/x.csv", "s3://marina/raw/default/x.csv"),
        ("s3://marina/raw/probe/..%2fdefault%2fx.csv", "s3://marina/raw/default/x.csv"),
        ("s3://marina/raw/probe\\..\\default\\x.csv", "s3://marina/raw/default/x.csv"),
        ("s3://marina/raw/probe//../../default/x.csv", "s3://marina/default/x.csv"),
        ("s3://marina/raw/probe/../../../../x.csv", None),  # climbs out of the bucket
        ("s3://marina/models/default/m.json#/../../raw/probe/x", "s3://marina/models/default/m.json"),
    ],
)
def test_anything_else_is_outside_however_it_is_spelt(uri: str, resolves_to: str | None) -> None:
    problem = csv_problem(uri)
    assert problem is not None
    assert problem.startswith(
        f"{uri}{f' (it resolves to {resolves_to})' if resolves_to else ''} is outside this namespace's "
        "storage area s3://marina/raw/probe/ or s3://marina/datasets/probe/; put the object there, "
        "or ask a cluster admin to share its prefix (MARINA_SHARED_PREFIXES)"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "s3://marina/raw/probe//houses.csv",
        "s3://marina/raw/probe/./houses.csv",
        "s3://marina/raw/probe/x/../houses.csv",
        "s3://marina/raw/probe/%68ouses.csv",
        "s3://marina/raw/probe/houses.csv?versionId=1",
        "s3://marina/raw/probe/parts//",
    ],
)
def test_a_path_inside_must_still_be_plain(uri: str) -> None:
    """Stores read keys literally while gateways resolve them: only a plain key is one object everywhere."""
    problem = csv_problem(uri)
    assert problem is not None and problem.startswith(f"{uri} is not a plain object path (it reads as s3://")


@pytest.mark.parametrize(
    ("uri", "readable"),
    [
        ("s3://public-data/houses.csv", True),
        ("s3://marina/shared/houses.csv", True),
        ("s3://marina/shared-secret/houses.csv", False),
        ("s3://marina/shared/../raw/default/x.csv", False),
        ("s3://public-data-2/houses.csv", False),
    ],
)
def test_shared_prefixes_are_readable_by_every_namespace(uri: str, readable: bool) -> None:
    assert (csv_problem(uri, SHARED) is None) is readable


def test_a_folder_of_parts_keeps_its_slash() -> None:
    """`s3://bucket/prefix/` names every part under the prefix: a plain form, not a key to refuse."""
    assert csv_problem("s3://marina/raw/probe/parts/") is None


@pytest.mark.parametrize(
    ("setting", "prefixes"),
    [
        ("", ()),
        (" s3://public-data , s3://marina/shared/ ,", ("s3://public-data/", "s3://marina/shared/")),
    ],
)
def test_admins_share_prefixes_in_the_settings(setting: str, prefixes: tuple[str, ...]) -> None:
    assert Settings.from_environment({"MARINA_SHARED_PREFIXES": setting}).shared_prefixes == prefixes


@pytest.mark.parametrize(
    "setting", ["public-data", "s3://", "s3:///x", "s3://marina/a/../b", "s3://marina/%2e"]
)
def test_a_shared_prefix_that_is_not_plain_stops_the_operator(setting: str) -> None:
    with pytest.raises(ValueError, match="MARINA_SHARED_PREFIXES"):
        Settings.from_environment({"MARINA_SHARED_PREFIXES": setting})


def test_a_model_of_another_namespace_is_refused_before_anything_is_created(
    kube: Any, settings: Settings
) -> None:
    uri = f"s3://marina/models/team-b/diabetes/model-{SHA}.json"
    kube.add_resource("ModelDeployment", "stolen", {"model": {"uri": uri, "sha256": SHA}})
    outcome = modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "stolen"))
    assert (outcome.state, outcome.reason) == (State.FAILED, "InvalidSpec")
    assert outcome.message.startswith(
        f"spec.model.uri: {uri} is outside this namespace's storage area s3://marina/models/default/;"
    )
    assert kube.writes == [] and kube.events[0][1:3] == ("Warning", "InvalidSpec")


@pytest.mark.parametrize(
    ("uri", "settings", "reason"),
    [
        (
            f"s3://marina/models/default/diabetes/model-{SHA}.json",
            Settings(probe_storage=False),
            "RollingOut",
        ),
        (
            f"s3://marina/models/team-b/diabetes/model-{SHA}.json",
            Settings(probe_storage=False),
            "InvalidSpec",
        ),
        ("s3://public-data/model.json", Settings(probe_storage=False), "InvalidSpec"),
        (
            "s3://public-data/model.json",
            Settings(probe_storage=False, shared_prefixes=("s3://public-data/",)),
            "RollingOut",
        ),
    ],
    ids=["own", "other-namespace", "not-shared", "shared"],
)
def test_a_model_uri_is_served_only_from_the_namespace_or_a_shared_prefix(
    kube: Any, uri: str, settings: Settings, reason: str
) -> None:
    kube.add_resource("ModelDeployment", "pinned", {"model": {"uri": uri, "sha256": SHA}})
    assert (
        modeldeployments.reconcile(kube, settings, kube.current("ModelDeployment", "pinned")).reason == reason
    )


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://marina/raw/default/houses", "Preparing"),
        ("s3://marina/raw/default/houses/", "Preparing"),
        ("s3://marina/raw/team-b/houses", "InvalidSpec"),
        ("s3://marina/raw/team-b/", "InvalidSpec"),
    ],
)
def test_a_stored_source_is_read_only_from_the_namespace(
    kube: Any, settings: Settings, kind: str, uri: str, reason: str
) -> None:
    kube.add_resource("Dataset", "houses", {"source": {kind: {"uri": uri}}, "target": "price"})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "houses"))
    assert outcome.reason == reason and len(kube.jobs()) == (reason == "Preparing")
    if reason == "InvalidSpec":
        assert outcome.message.startswith(
            f"spec.source.{kind}.uri: {uri} is outside this namespace's storage area"
        )
