"""Shadow traffic: a champion server copies a share of its answered requests to a challenger off the
request path and compares the two models' predictions on the same rows."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_helpers import FEATURES, TRAINING, Client, ServerProcess

from marina.cli import main
from marina.model.artifact import ModelArtifact, save
from marina.serving import protocol, shadow
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel


@pytest.fixture
def challenger_file(tmp_path: Path) -> tuple[str, str]:
    """A challenger close to the champion (bp's coefficient and the intercept differ)."""
    folder = tmp_path / "challenger"
    folder.mkdir()
    artifact = ModelArtifact(
        coefficients=[1.5, -2.0, 0.35],
        intercept=3.5,
        feature_names=FEATURES,
        dataset={"name": "diabetes"},
        feature_statistics={name: TRAINING[name] for name in FEATURES},
    )
    return save(artifact, str(folder))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for an app and its mirror's connections, closed after one more turn (the closed
    connections' sockets are let go then)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


@pytest.fixture
def challenger(challenger_file: tuple[str, str]) -> Iterator[ServerProcess]:
    process = ServerProcess(*challenger_file, "--name", "diabetes")  # the champion's model name
    process.wait_for_line("Uvicorn running on")
    yield process
    process.stop()


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def settled(document: dict[str, Any]) -> bool:
    """Every mirrored request has an outcome (none queued or in flight)."""
    return bool(document["compared"] + document["rejected"] + document["failed"] == document["mirrored"])


def predictions(coefficients: list[float], intercept: float, rows: np.ndarray) -> np.ndarray:
    return rows @ np.array(coefficients) + intercept


def test_two_real_servers_compare_every_row_as_computed_by_hand(
    artifact_file: tuple[str, str], challenger: ServerProcess
) -> None:
    flags = ("--name", "diabetes", "--shadow-url", challenger.base, "--shadow-challenger", "abc")
    champion = ServerProcess(*artifact_file, *flags)
    try:
        champion.wait_for_line("shadow: 100 % of the answered requests copied to")
        champion.wait_for_line("Uvicorn running on")
        rng = np.random.default_rng(7)
        sent = []
        with httpx.Client(base_url=champion.base) as client:
            for index in range(60):
                rows = np.column_stack([rng.uniform(0, 9, 3), np.full(3, 5.0), rng.uniform(1, 20, 3)])
                rows = rows[: 1 + index % 3]
                if index % 2:
                    answer = client.post("/v1/models/diabetes:predict", json={"instances": rows.tolist()})
                    got = answer.json()["predictions"]
                else:
                    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                        "data": rows.ravel().tolist()}]}  # fmt: skip
                    got = client.post("/v2/models/diabetes/infer", json=body).json()["outputs"][0]["data"]
                assert got == pytest.approx(predictions([1.5, -2.0, 0.25], 3.0, rows).tolist())  # unchanged
                sent.append(rows)
            wait_until(lambda: settled(client.get("/v2/models/diabetes/shadow").json()))
            document = client.get("/v2/models/diabetes/shadow").json()
            exported = client.get("/metrics").text
        champion.process.send_signal(signal.SIGTERM)  # shutdown closes the mirror's connections cleanly
        assert champion.process.wait(timeout=20) in (0, -signal.SIGTERM)
        output = champion.all_output()
        assert any("Finished server process" in line for line in output), output
        assert not any("Traceback" in line or "Error" in line for line in output), output
    finally:
        champion.stop()
    rows = np.vstack(sent)
    mine = predictions([1.5, -2.0, 0.25], 3.0, rows)
    theirs = predictions([1.5, -2.0, 0.35], 3.5, rows)
    difference = np.abs(theirs - mine)
    assert (document["mirrored"], document["compared"], document["dropped"]) == (60, 60, 0)
    assert (document["failed"], document["rejected"], document["challenger"]) == (0, 0, "abc")
    assert document["rows"] == len(rows)
    assert document["absDifference"]["sum"] == pytest.approx(difference.sum())
    assert document["absDifference"]["sumSquares"] == pytest.approx(difference @ difference)
    assert document["absDifference"]["max"] == pytest.approx(difference.max())
    assert document["champion"]["count"] == len(rows)
    assert document["champion"]["mean"] == pytest.approx(mine.mean())
    assert document["champion"]["m2"] == pytest.approx(((mine - mine.mean()) ** 2).sum())
    assert 'marina_shadow_requests_total{outcome="compared"} 60.0' in exported
    gauge = next(
        line for line in exported.splitlines() if line.startswith("marina_shadow_difference_mean_sd ")
    )
    assert float(gauge.split()[1]) == pytest.approx(difference.mean() / mine.std())


def test_the_mirrored_share_is_within_binomial_bounds(
    served: ServedModel, challenger: ServerProcess, loop: asyncio.AbstractEventLoop
) -> None:
    settings = shadow.ShadowSettings(challenger.base, percent=30.0, queue_size=2000)
    app = ServingApp(served, shadowing=settings)
    client = Client(app, loop)
    try:
        for _ in range(600):
            answer = client.post("/v1/models/diabetes:predict", json={"instances": [[1, 5, 2]]})
            assert answer.status_code == 200
        assert app.shadow is not None
        wait_until(lambda: settled(client.get("/v2/models/diabetes/shadow").json()))
        document = client.get("/v2/models/diabetes/shadow").json()
    finally:
        app.close()
    chosen = document["mirrored"] + document["dropped"]
    sd = math.sqrt(600 * 0.3 * 0.7)  # 11.2
    assert abs(chosen - 180) < 5 * sd, chosen  # a false failure once in 3.5 million runs
    assert document["dropped"] == 0 and document["compared"] == document["mirrored"]


def test_a_copy_is_handed_to_the_mirror_only_after_its_answer_is_written(served: ServedModel) -> None:
    """The hand-off wakes a worker thread that then wants the GIL: before the answer's write, the client
    would wait for that switch."""
    app = ServingApp(served)
    mirror = app.shadow = shadow.Shadow(shadow.ShadowSettings("http://127.0.0.1:9", queue_size=4))
    order: list[str] = []
    put = mirror.put
    mirror.put = lambda *args: (order.append("put"), put(*args))  # type: ignore[method-assign]
    body = json.dumps({"instances": [[1, 5, 2]]}).encode()
    scope = {"type": "http", "method": "POST", "path": "/v1/models/diabetes:predict",
             "headers": [(b"content-length", str(len(body)).encode())], "query_string": b""}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        order.append(message["type"])

    async def answer() -> None:
        await app(scope, receive, send)
        await asyncio.sleep(0)  # one more turn of the loop

    asyncio.run(answer())
    mirror.close()
    assert order == ["http.response.start", "http.response.body", "put"]
    assert mirror.mirrored == 1


def hanging_listener() -> socket.socket:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


@pytest.mark.parametrize("target", ["hanging", "down"])
def test_a_hanging_or_absent_challenger_never_delays_or_changes_an_answer(
    served: ServedModel, target: str, loop: asyncio.AbstractEventLoop
) -> None:
    listener = hanging_listener()
    port = listener.getsockname()[1]
    if target == "down":
        listener.close()  # nothing listens: every connection is refused
    url = f"http://127.0.0.1:{port}"
    settings = shadow.ShadowSettings(url, concurrency=2, queue_size=4, timeout_seconds=30)
    app = ServingApp(served, shadowing=settings)
    client = Client(app, loop)
    expected = served.predict(np.array([[1.0, 5.0, 2.0]])).tolist()
    try:
        slowest = 0.0
        for _ in range(40):
            started = time.perf_counter()
            answer = client.post("/v1/models/diabetes:predict", json={"instances": [[1, 5, 2]]})
            slowest = max(slowest, time.perf_counter() - started)
            assert answer.json() == {"predictions": expected}
        document = client.get("/v2/models/diabetes/shadow").json()
    finally:
        app.close(), listener.close()
    assert slowest < 1.0  # the mirror's 30 s timeout is nowhere on the path
    assert document["compared"] == 0 and document["mirrored"] + document["dropped"] == 40
    if target == "hanging":  # two in flight, four queued, the rest dropped
        assert document["mirrored"] <= 2 + 4 and document["dropped"] >= 34
    else:  # refused at once: failed, and counted
        assert document["failed"] + document["dropped"] >= 1


@pytest.mark.parametrize("closed_from", ["an executor thread", "after the loop ended"])
def test_closing_drops_and_counts_what_waits_or_is_in_flight(closed_from: str) -> None:
    """The server closes its app from an executor thread at shutdown, and once more after its loop ended:
    neither may touch the loop's connections from the wrong thread, or fail."""
    listener = hanging_listener()
    settings = shadow.ShadowSettings(f"http://127.0.0.1:{listener.getsockname()[1]}", concurrency=1)
    mirror = shadow.Shadow(settings)

    async def mirror_three() -> None:
        for _ in range(3):
            mirror.put("/v1/models/m:predict", b"{}", {"content-type": "application/json"}, np.array([1.0]))
        while not any(link.copy is not None for link in mirror.links):  # one in flight, two waiting
            await asyncio.sleep(0.005)
        if closed_from == "an executor thread":
            await asyncio.get_running_loop().run_in_executor(None, mirror.close)
            while mirror.links:
                await asyncio.sleep(0.005)

    try:
        asyncio.run(asyncio.wait_for(mirror_three(), 10))
        if closed_from == "after the loop ended":
            mirror.close()
    finally:
        listener.close()
    assert mirror.comparison.counts["dropped"] == 3 and not mirror.waiting and not mirror.links
    assert mirror.mirrored == 3


def test_a_challenger_that_refuses_the_request_counts_as_rejected(
    served: ServedModel, challenger_file: tuple[str, str], loop: asyncio.AbstractEventLoop
) -> None:
    other = ServerProcess(*challenger_file)  # serves the name "dm": 404 for "diabetes"
    app = ServingApp(served, shadowing=shadow.ShadowSettings(other.base))
    client = Client(app, loop)
    try:
        other.wait_for_line("Uvicorn running on")
        path = "/v1/models/diabetes:predict"
        assert client.post(path, json={"instances": [[1, 5, 2]]}).status_code == 200
        wait_until(lambda: settled(client.get("/v2/models/diabetes/shadow").json()))
        document = client.get("/v2/models/diabetes/shadow").json()
    finally:
        app.close(), other.stop()
    assert (document["rejected"], document["compared"]) == (1, 0)


def test_without_a_shadow_url_there_is_no_comparison(client: Client) -> None:
    answer = client.get("/v2/models/diabetes/shadow")
    assert answer.status_code == 404 and "--shadow-url" in answer.json()["error"]


def test_the_comparison_merges_batches_as_numpy_computes_the_whole() -> None:
    rng = np.random.default_rng(3)
    comparison = shadow.Comparison()
    champion_all, challenger_all = [], []
    for size in rng.integers(1, 20, 50):
        champion = rng.normal(1e6, 3.0, size)  # far from 0: a naive sum of squares would lose digits
        challenger = champion + rng.normal(0.0, 0.5, size)
        comparison.add(champion, challenger)
        champion_all.append(champion)
        challenger_all.append(challenger)
    mine, theirs = np.concatenate(champion_all), np.concatenate(challenger_all)
    assert comparison.mean == pytest.approx(mine.mean(), rel=1e-12)
    assert comparison.m2 / comparison.count == pytest.approx(mine.var(), rel=1e-9)
    assert comparison.mean_difference == pytest.approx(np.abs(theirs - mine).mean() / mine.std(), rel=1e-9)


def test_predictions_are_read_from_every_answer_form(served: ServedModel) -> None:
    values = np.array([1.25, -3.5])
    assert shadow.predictions_of(protocol.encode_v1(values), {}).tolist() == values.tolist()
    body, length = protocol.encode_v2(served, values, "id-1")
    assert length is None and shadow.predictions_of(body, {}).tolist() == values.tolist()
    body, length = protocol.encode_v2(served, values, None, binary=True)
    headers = {shadow.BINARY_HEADER_LENGTH: str(length)}
    assert shadow.predictions_of(body, headers).tolist() == values.tolist()
    with pytest.raises(KeyError):
        shadow.predictions_of(json.dumps({"error": "no"}).encode(), {})
    for not_finite in (b'{"predictions": [NaN]}', b'{"predictions": [1e400]}'):  # the copy counts as failed
        with pytest.raises(ValueError):
            shadow.predictions_of(not_finite, {})


@pytest.mark.parametrize(
    "flags",
    [["--shadow-url", "http://x", "--shadow-percent", "101"], ["--shadow-url", "ftp://x"]],
)
def test_bad_shadow_flags_are_refused(artifact_file: tuple[str, str], flags: list[str]) -> None:
    try:
        code = main(["serve", "--model", artifact_file[0], *flags])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    assert code == 2


def test_an_answer_without_a_length_counts_as_failed(
    served: ServedModel, loop: asyncio.AbstractEventLoop
) -> None:
    """The mirror's HTTP client takes only answers that say their length (as `marina serve` answers)."""
    listener = hanging_listener()

    def answer_once() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(
                b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"predictions": [9.0]}'
            )

    server = threading.Thread(target=answer_once, daemon=True)
    server.start()
    app = ServingApp(served, shadowing=shadow.ShadowSettings(f"http://127.0.0.1:{listener.getsockname()[1]}"))
    client = Client(app, loop)
    try:
        assert client.post("/v1/models/diabetes:predict", json={"instances": [[1, 5, 2]]}).status_code == 200
        wait_until(lambda: settled(client.get("/v2/models/diabetes/shadow").json()))
        document = client.get("/v2/models/diabetes/shadow").json()
    finally:
        app.close(), listener.close()
    assert (document["failed"], document["compared"]) == (1, 0)


def test_a_connection_the_challenger_closed_is_opened_again_for_the_same_copy() -> None:
    """uvicorn closes a keep-alive connection after 5 idle seconds; a copy sent as it does so must not
    fail for it. Here the first connection answers one copy, then closes without answering the next."""
    listener = hanging_listener()
    answer = b'HTTP/1.1 200 OK\r\ncontent-length: 22\r\n\r\n{"predictions": [9.0]}'

    def serve_two_connections() -> None:
        first, _ = listener.accept()
        with first:
            first.recv(65536)
            first.sendall(answer)
            first.recv(65536)  # the second copy: closed unanswered
        second, _ = listener.accept()
        with second:
            second.recv(65536)
            second.sendall(answer)

    server = threading.Thread(target=serve_two_connections, daemon=True)
    server.start()
    mirror = shadow.Shadow(
        shadow.ShadowSettings(f"http://127.0.0.1:{listener.getsockname()[1]}", concurrency=1)
    )

    async def mirror_two() -> None:
        for expected in (1, 2):
            mirror.put("/v1/models/m:predict", b"{}", {"content-type": "application/json"}, np.array([9.0]))
            while mirror.comparison.counts["compared"] + mirror.comparison.counts["failed"] < expected:
                await asyncio.sleep(0.005)

    try:
        asyncio.run(asyncio.wait_for(mirror_two(), 10))
    finally:
        mirror.close(), listener.close()
    server.join(5)
    assert not server.is_alive()
    assert (mirror.comparison.counts["compared"], mirror.comparison.counts["failed"]) == (2, 0)
