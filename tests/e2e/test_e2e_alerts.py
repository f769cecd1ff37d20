"""The alerts on the real cluster: a ModelDeployment whose inputs drift makes the in-cluster Prometheus
(`make monitoring`) fire MarinaModelDrifted for it, from the operator's own metrics; in distribution it
does not.

Inputs are shifted as in test_e2e_drift.py: rows drawn from scikit-learn's diabetes data, one feature
moved by one training standard deviation. The time from the Drifted condition to the firing alert is
printed for the note (`pytest -s`)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_drift import BATCH_ROWS, SHIFTED_FEATURE
from tests.e2e.test_e2e_pipeline import first_answer, predict

NAME = "alerted"
INTERVAL_SECONDS = 10  # spec.monitoring.intervalSeconds
MIN_ROWS = 1000
#: hack/monitoring-up.sh's scrape and rule interval (PROMETHEUS_INTERVAL, 5s).
PROMETHEUS_INTERVAL_SECONDS = 5
#: The alert follows the status within one scrape plus one rule evaluation (the alert has no `for`);
#: twice that for the scrape and evaluation that straddle the change.
ALERT_DELAY_SECONDS = 2 * 2 * PROMETHEUS_INTERVAL_SECONDS
ALERT = "MarinaModelDrifted"


@pytest.fixture(scope="module")
def served(marina: Any, prometheus: str) -> Any:
    monitoring = {"intervalSeconds": INTERVAL_SECONDS, "minRows": MIN_ROWS}
    marina.apply_ready(*marina.pipeline(NAME, replicas=1, monitoring=monitoring))
    return marina


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.load(response)["data"]["result"])


def alerts(prometheus: str, namespace: str) -> list[dict[str, Any]]:
    """This ModelDeployment's MarinaModelDrifted alerts, as Prometheus' /api/v1/alerts lists them."""
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=10) as response:
        listed = json.load(response)["data"]["alerts"]
    return [
        a
        for a in listed
        if a["labels"].get("alertname") == ALERT
        and a["labels"].get("namespace") == namespace
        and a["labels"].get("modeldeployment") == NAME
    ]


def level(prometheus: str, namespace: str) -> str | None:
    """The level the leading operator reports for this ModelDeployment in Prometheus."""
    selector = f'namespace="{namespace}", modeldeployment="{NAME}"'
    found = query(
        prometheus,
        f"marina_operator_drift_level{{{selector}}} == 1"
        ' and on (pod) (marina_operator_leader{job="marina-operator"} == 1)',
    )
    return found[0]["metric"]["level"] if len(found) == 1 else None


def send(url: str, rows: np.ndarray) -> None:
    for start in range(0, len(rows), BATCH_ROWS):
        predict(url, NAME, rows[start : start + BATCH_ROWS].tolist(), timeout=30)


def test_drift_fires_the_alert_in_prometheus(served: Any, prometheus: str) -> None:
    marina = served
    namespace = marina.namespace
    x_train = np.asarray(load_diabetes().data, dtype=np.float64)
    rng = np.random.default_rng(7)
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME)  # a new Service's rules reach this host a moment after Ready
    send(url, x_train[rng.integers(0, len(x_train), 2 * MIN_ROWS)])
    marina.wait_for(
        "the in-distribution check in Prometheus",
        lambda: level(prometheus, namespace) in ("Stable", "Moderate"),
        timeout=2 * INTERVAL_SECONDS + ALERT_DELAY_SECONDS,
    )
    assert alerts(prometheus, namespace) == []

    column = list(load_diabetes().feature_names).index(SHIFTED_FEATURE)
    shifted = x_train[rng.integers(0, len(x_train), 5 * MIN_ROWS)].copy()
    shifted[:, column] += x_train[:, column].std()
    send(url, shifted)
    marina.wait_for(
        "Drifted True",
        lambda: marina.condition("modeldeployment", NAME, "Drifted").get("status") == "True",
        timeout=4 * INTERVAL_SECONDS,
        every=0.25,
    )
    drifted = time.time()
    (alert,) = marina.wait_for(
        f"{ALERT} firing",
        lambda: [a for a in alerts(prometheus, namespace) if a["state"] == "firing"] or None,
        timeout=ALERT_DELAY_SECONDS,
        every=0.5,
    )
    print(
        f"\nDrifted condition to firing alert: {time.time() - drifted:.1f}s;", alert["annotations"]["summary"]
    )
    assert alert["labels"]["severity"] == "warning"
    assert f"{namespace}/{NAME}" in alert["annotations"]["summary"]
    psi = query(
        prometheus, f'marina_operator_drift_feature_psi{{namespace="{namespace}", modeldeployment="{NAME}"}}'
    )
    top = max(psi, key=lambda sample: float(sample["value"][1]))
    assert top["metric"]["feature"] == SHIFTED_FEATURE  # the dashboard's drift-per-feature panel names it
