"""The ASGI application: routing, body limits, the error-to-status mapping, timing. No framework.

Paths (model `m`, optional `/versions/<v>` after `/v2/models/<m>`):
  GET  /v2/health/live · /v2/health/ready · /v2 · /v2/models/m · /v2/models/m/ready · /metrics
  GET  /v2/models/m/distribution · /v2/models/m/traffic (counters for the operator's canary analysis)
  GET  /v2/models/m/shadow (the comparison with a challenger the answered requests are mirrored to)
  POST /v2/models/m/infer · /v1/models/m:predict · /v1/models/m:explain
  POST /v2/models/m/feedback (true targets by request id, with a payload log: `payloads`)
  GET  /v1/models · /v1/models/m

Every answered inference request (200) carries its request id in an `X-Request-Id` header: the v2 body's
`id` when the client sent one, else the client's own `X-Request-Id` header, else 32 random hex digits.
The v2 body echoes `id` only when the client sent one (the protocol's rule), so standard clients see the
bodies they always saw.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np

from marina import __version__
from marina.serving import jsoncodec, metrics, outputs, payloads, protocol, recording, shadow, traffic
from marina.serving.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    ServingError,
    status_of,
)
from marina.serving.exposition import CONTENT_TYPE
from marina.serving.limits import BodyBudget, BodyReservation, ServerLimits
from marina.serving.model import ServedModel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Response = tuple[int, bytes, Headers]  # status, body, headers except content-length
Handler = Callable[["ServingApp", "Route", bytes, Scope], Response]

CLIENT_CLOSED_REQUEST = 499
JSON: Headers = [(b"content-type", b"application/json")]
BINARY_HEADER_LENGTH = b"inference-header-content-length"
REQUEST_ID = b"x-request-id"
GET, POST = ("GET",), ("POST",)
log = logging.getLogger("marina.serving")


class _ClientGone(Exception):
    """The client disconnected before sending its whole body; there is nobody to answer."""


@dataclass(frozen=True)
class Route:
    endpoint: str  # the `endpoint` label in metrics: a template, never the raw path
    methods: tuple[str, ...]
    handler: Handler
    model: str | None = None
    version: str | None = None


def _json(value: Any, status: int = 200) -> Response:
    return status, jsoncodec.dumps(value), JSON


def _finite(predictions: np.ndarray) -> np.ndarray:
    """Predictions as they are, or a 400 naming the first row whose prediction overflowed or is NaN.

    One row's prediction is checked as a Python float (0.1 µs). For more, ``p·p`` is finite whenever every
    prediction is below 1e154: one BLAS call (0.5 µs against 3 µs for ``isfinite().all()``); only when it
    is not are the rows checked one by one.
    """
    if len(predictions) == 1:
        if math.isfinite(predictions.item()):
            return predictions
    elif math.isfinite(predictions.dot(predictions)) or np.isfinite(predictions).all():
        return predictions
    bad = np.flatnonzero(~np.isfinite(predictions))
    raise BadRequest(
        f"row {int(bad[0])}: the prediction is {predictions[bad[0]]} (inputs not finite or too large for "
        f"float64); {bad.size} of {predictions.size} rows affected, nothing was predicted"
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _busy(size: int) -> str:
    return (
        f"the server is holding as many request bodies as its memory allows; a body of {size} bytes "
        "does not fit now, retry shortly"
    )


def _error_headers(error: ServingError) -> Headers:
    """What the status alone does not say: allowed methods, when to retry, that the body is abandoned."""
    if isinstance(error, MethodNotAllowed):
        return [(b"allow", ", ".join(error.allowed).encode())]
    if isinstance(error, Overloaded):
        return [(b"retry-after", b"1"), (b"connection", b"close")]
    if isinstance(error, PayloadTooLarge):
        return [(b"connection", b"close")]  # the rest of the body is never read
    return []


def request_id(scope: Scope, given: str | None = None) -> str:
    """The id a request is answered (and logged) under: `given` (the v2 body's `id`), else the client's
    X-Request-Id header, else a new one (128 random bits as hex, the form of a uuid4's hex)."""
    if given:
        return given
    for name, value in scope["headers"]:
        if name == REQUEST_ID and value:
            sent: bytes = value
            return sent.decode("latin-1")
    return _new_id()


#: New request ids drawn from the system's random source at once (a read per id cost 0.5 us a request)
IDS_PER_READ = 256
_fresh_ids: list[str] = []
os.register_at_fork(after_in_child=_fresh_ids.clear)  # a child never answers with its parent's ids


def _new_id() -> str:
    if not _fresh_ids:
        digits = os.urandom(16 * IDS_PER_READ).hex()
        _fresh_ids.extend(digits[start : start + 32] for start in range(0, len(digits), 32))
    return _fresh_ids.pop()


def _with_id(headers: Headers, rid: str) -> Headers:
    return [*headers, (REQUEST_ID, rid.encode("latin-1", "replace"))]


def _binary_header_length(scope: Scope) -> int | None:
    """Triton's binary tensor extension: the JSON part's length, when the body carries binary data."""
    for name, value in scope["headers"]:
        if name == BINARY_HEADER_LENGTH:
            if not value.isdigit():
                raise BadRequest(
                    f"Inference-Header-Content-Length must be a byte count, got {value.decode()!r}"
                )
            return int(value)
    return None


class ServingApp:
    """Serves one model. Not ready (503 on model endpoints) until `load` is called. With `extrapolation`
    "reject", a request with a row outside the training data is answered 422 naming the row and why."""

    def __init__(
        self,
        model: ServedModel | None = None,
        limits: ServerLimits | None = None,
        extrapolation: str = outputs.ALLOW,
        logging: payloads.LogSettings | None = None,
        shadowing: shadow.ShadowSettings | None = None,
    ) -> None:
        if extrapolation not in outputs.EXTRAPOLATION_POLICIES:
            raise ValueError(f"extrapolation must be one of {', '.join(outputs.EXTRAPOLATION_POLICIES)}")
        self.reject = extrapolation == outputs.REJECT
        self.limits = limits or ServerLimits()
        self.budget = BodyBudget(self.limits.body_budget_bytes)
        self.requests = metrics.RequestMetrics()
        self.traffic = traffic.Traffic()
        self.model: ServedModel | None = None
        self.model_metrics: metrics.ModelMetrics | None = None
        self.recorder: recording.Recorder | None = None
        self.logging = logging
        self.payloads: payloads.PayloadLog | None = None
        self.shadowing = shadowing
        self.shadow: shadow.Shadow | None = None
        if model is not None:
            self.load(model)

    def load(self, model: ServedModel) -> None:
        model_metrics = metrics.ModelMetrics(model)
        histograms = model_metrics.histograms
        self.recorder = recording.Recorder(
            model.n_features,
            [
                model_metrics.record,
                model_metrics.count_extrapolation,
                lambda features, predictions, at: self.traffic.predicted(predictions),
            ],
            histograms.window_seconds if histograms is not None else float("inf"),
        )
        self.model_metrics = model_metrics
        if self.logging is not None:
            if self.payloads is not None:
                self.payloads.close()
            self.payloads = payloads.PayloadLog(self.logging, model)
            self.payloads.start()
        if self.shadowing is not None:
            if self.shadow is not None:
                self.shadow.close()
            self.shadow = shadow.Shadow(self.shadowing)  # a new model: a new comparison
        self.model = model

    def close(self) -> None:
        """Write what the payload log holds (on shutdown; a second call does nothing)."""
        log_, self.payloads = self.payloads, None
        if log_ is not None:
            log_.close()
        mirror, self.shadow = self.shadow, None
        if mirror is not None:
            mirror.close()

    def _flush(self) -> None:
        """Hand the buffered rows to the monitoring, before anyone reads it."""
        if self.recorder is not None:
            self.recorder.flush()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # counted in flight here, not in a coroutine of its own (0.3 us)
            self.requests.in_flight += 1
            try:
                await self._answer(scope, receive, send)
            finally:
                self.requests.in_flight -= 1
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        endpoint = "unmatched"
        reservation = self.budget.reservation()
        try:
            route = resolve(scope["path"])
            endpoint = route.endpoint
            if scope["method"] not in route.methods:
                raise MethodNotAllowed(
                    f"method {scope['method']} is not allowed on {scope['path']}; use {route.methods[0]}",
                    route.methods,
                )
            body = await self._read_body(scope, receive, reservation) if route.methods == POST else b""
            status, content, headers = route.handler(self, route, body, scope)
        except _ClientGone:  # nobody to answer; counted as nginx does, 499 "client closed request"
            self._observe(endpoint, CLIENT_CLOSED_REQUEST, perf_counter() - started)
            return
        except ServingError as error:
            status, content, headers = _json({"error": str(error)}, status_of(error))
            headers = [*headers, *_error_headers(error)]
        except Exception:  # a bug, not a bad request: log it, answer 500, keep serving
            log.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            status, content, headers = _json({"error": "internal server error"}, 500)
        finally:
            reservation.release()
        headers = [*headers, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self._observe(endpoint, status, perf_counter() - started)

    def _observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.observe(endpoint, status, seconds)
        self.traffic.observe(endpoint, status, seconds)

    async def _read_body(self, scope: Scope, receive: Receive, reservation: BodyReservation) -> bytes:
        """The whole body, within the size limit and the memory budget."""
        limit = self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None:
            if declared > limit:
                raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
            if not reservation.grow(declared):
                raise Overloaded(_busy(declared))
        chunks: list[bytes] = []
        size = 0
        while True:  # the connection layer (server.connection) bounds how long this may take
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            if declared is None and not reservation.grow(len(chunk)):
                raise Overloaded(_busy(size))
            if not message.get("more_body"):
                return b"".join([*chunks, chunk]) if chunks else chunk
            chunks.append(chunk)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ handlers

    def served(self, route: Route) -> ServedModel:
        """The model a route names, or the reason it cannot be used (503 not ready, 404 unknown)."""
        model = self.model
        if model is None:
            raise NotReady("the model is not loaded yet")
        if route.model != model.name:
            raise NotFound(f"model '{route.model}' is not served here; this server serves '{model.name}'")
        if route.version is not None and not model.has_version(route.version):
            raise NotFound(
                f"model '{model.name}' has no version '{route.version}'; the served version is "
                f"'{model.version}'"
            )
        return model

    def live(self, route: Route, body: bytes, scope: Scope) -> Response:
        return _json({"live": True})

    def ready(self, route: Route, body: bytes, scope: Scope) -> Response:
        if self.model is None:
            raise NotReady("the model is not loaded yet")
        return _json({"ready": True})

    def server_metadata(self, route: Route, body: bytes, scope: Scope) -> Response:
        return _json({"name": "marina", "version": __version__, "extensions": ["binary_tensor_data"]})

    def model_metadata(self, route: Route, body: bytes, scope: Scope) -> Response:
        return _json(self.served(route).v2_metadata())

    def distribution(self, route: Route, body: bytes, scope: Scope) -> Response:
        """Serving rows per reference bin and time window, beside the reference itself (for drift)."""
        model = self.served(route)
        self._flush()
        histograms = self.model_metrics.histograms if self.model_metrics is not None else None
        if histograms is None:
            raise NotFound(
                f"model '{model.name}' has no reference distribution (trained before Marina recorded one); "
                "retrain it to monitor drift"
            )
        names = model.feature_names
        windows = histograms.windows()
        return _json(
            {
                "name": model.name,
                "version": model.version,
                "reference": histograms.reference.to_dict(names),
                "windowSeconds": histograms.window_seconds,
                "windows": [w.to_dict(names, complete=w is not windows[-1]) for w in windows],
            }
        )

    def traffic_counters(self, route: Route, body: bytes, scope: Scope) -> Response:
        """Inference requests, server errors, latency buckets and prediction sums since start-up."""
        model = self.served(route)
        self._flush()
        return _json(self.traffic.document(model.name, model.version))

    def shadow_comparison(self, route: Route, body: bytes, scope: Scope) -> Response:
        """The mirrored requests' outcomes and the paired differences with the challenger since start-up."""
        model = self.served(route)
        mirror = self.shadow
        if mirror is None:
            raise NotFound(f"model '{model.name}' mirrors no traffic here (no --shadow-url)")
        return _json(mirror.document(model.name, model.version))

    def model_ready(self, route: Route, body: bytes, scope: Scope) -> Response:
        return _json({"name": self.served(route).name, "ready": True})

    def infer(self, route: Route, body: bytes, scope: Scope) -> Response:
        model = self.served(route)
        header, binary = protocol.split_binary(body, _binary_header_length(scope))
        payload = protocol.parse_json(header)
        request = protocol.decode_v2(payload, model, binary, protocol.may_hold_booleans(header))
        features = request.features
        predictions = _finite(model.predict(features))
        computed = self._guarded(model, features, predictions) if self.reject else None
        rid = request_id(scope, request.request_id)
        if request.outputs is None:
            content, header_length = protocol.encode_v2(
                model, predictions, request.request_id, request.binary_output
            )
        else:
            content, header_length = outputs.v2_answer(
                model, features, predictions, request.outputs, request.request_id, computed
            )
        self._record(features, predictions, request.unseen, rid, request.columns)
        if self.shadow is not None:
            self._mirror(self.shadow, f"/v2/models/{model.name}/infer", body, scope, rid, predictions)
        if header_length is None:
            return 200, content, _with_id(JSON, rid)
        return (
            200,
            content,
            [
                (b"content-type", b"application/octet-stream"),
                (BINARY_HEADER_LENGTH, str(header_length).encode()),
                (REQUEST_ID, rid.encode("latin-1", "replace")),
            ],
        )

    def v1_models(self, route: Route, body: bytes, scope: Scope) -> Response:
        return _json({"models": [] if self.model is None else [self.model.name]})

    def predict(self, route: Route, body: bytes, scope: Scope) -> Response:
        model = self.served(route)
        payload = protocol.parse_json(body)
        features, unseen, columns = _v1_features(model, payload, protocol.may_hold_booleans(body))
        predictions = _finite(model.predict(features))
        self._guarded(model, features, predictions)
        rid = request_id(scope)
        self._record(features, predictions, unseen, rid, columns)
        if self.shadow is not None:
            self._mirror(self.shadow, f"/v1/models/{model.name}:predict", body, scope, rid, predictions)
        return 200, protocol.encode_v1(predictions), _with_id(JSON, rid)

    def explain(self, route: Route, body: bytes, scope: Scope) -> Response:
        """KServe's `:explain` verb: the `:predict` body in; per row the prediction, the base value, each
        raw input's contribution, the interval (level from `parameters.level`, default 0.95) and the
        guard's verdict out."""
        model = self.served(route)
        payload = protocol.parse_json(body)
        features, unseen, columns = _v1_features(model, payload, protocol.may_hold_booleans(body))
        parameters = payload.get("parameters") if isinstance(payload, Mapping) else None
        level = protocol.level_of(
            parameters.get("level") if isinstance(parameters, Mapping) else None, "parameter 'level'"
        )
        predictions = _finite(model.predict(features))
        computed = self._guarded(model, features, predictions) or outputs.Computed(
            model, features, predictions
        )
        document = outputs.v1_explanation(computed, level)
        rid = request_id(scope)
        self._record(features, predictions, unseen, rid, columns)
        status, content, headers = _json(document)
        return status, content, _with_id(headers, rid)

    def feedback(self, route: Route, body: bytes, scope: Scope) -> Response:
        """True targets of answered requests, by request id: `[{"id": ..., "target": ...}, ...]` (or
        `{"feedback": [...]}`), kept beside the payload log; 202 with the number accepted."""
        model = self.served(route)
        log_ = self.payloads
        if log_ is None:
            raise NotFound(
                f"model '{model.name}' takes no feedback here: its payload log is off (a ModelDeployment's "
                "spec.logging.sampleRate above 0 turns it on)"
            )
        entry = payloads.parse_feedback(protocol.parse_json(body), time.time())
        if not log_.add_feedback(entry):
            raise Overloaded("the feedback buffer is full (storage is slow or down); send it again shortly")
        return _json({"accepted": len(entry.ids)}, 202)

    def _guarded(
        self, model: ServedModel, features: np.ndarray, predictions: np.ndarray
    ) -> outputs.Computed | None:
        """Under `--extrapolation reject`: 422 when any row is outside the training data (its verdicts are
        counted, the request is not recorded); the verdicts are kept for the outputs."""
        if not self.reject:
            return None
        computed = outputs.Computed(model, features, predictions)
        verdicts = computed.verdicts()
        if verdicts.outside.any():
            if self.model_metrics is not None:
                self.model_metrics.count_verdicts(verdicts)
            raise outputs.refusal(model, features, verdicts)
        return computed

    def _mirror(
        self, mirror: shadow.Shadow, path: str, body: bytes, scope: Scope, rid: str, predictions: np.ndarray
    ) -> None:
        """Hand an answered request to the mirror (a draw, then a put that never waits) once its answer is
        written: the answer goes out in the step of the event loop that runs this handler (`_answer`
        sends without yielding), and `call_soon` runs the put after that step. Outside a loop (a direct
        call) there is nothing to send from: the put counts the copy as dropped."""
        if mirror.draw() >= mirror.share:
            return
        headers = {"content-type": "application/json", "x-request-id": rid}
        for name, value in scope["headers"]:
            if name == b"content-type" or name == BINARY_HEADER_LENGTH:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            mirror.put(path, body, headers, predictions)
            return
        loop.call_soon(mirror.put, path, body, headers, predictions)

    def metrics(self, route: Route, body: bytes, scope: Scope) -> Response:
        self._flush()
        extra: list[Any] = [c for c in (self.payloads, self.shadow) if c is not None]
        return (
            200,
            metrics.render(self.requests, self.model_metrics, extra),
            [(b"content-type", CONTENT_TYPE)],
        )

    def _record(
        self,
        features: np.ndarray,
        predictions: np.ndarray,
        unseen: Mapping[str, int] | None,
        rid: str,
        columns: Sequence[Any] | None,
    ) -> None:
        """Only answered requests count: a 400 leaves the statistics, unseen counts and payload log alone."""
        if self.recorder is not None:
            self.recorder.add(features, predictions)
        if unseen and self.model_metrics is not None:
            self.model_metrics.count_unseen(unseen)
        if self.payloads is not None:
            self.payloads.add(rid, features, predictions, columns)


def _v1_features(
    model: ServedModel, payload: Any, check_booleans: bool
) -> tuple[np.ndarray, Mapping[str, int] | None, Sequence[Any] | None]:
    """A v1 body's rows as the model's feature matrix (raw inputs encoded as training did), the unseen
    values per category input and the raw columns (a model with categories; else None)."""
    if model.has_categories:
        return protocol.decode_v1_inputs(payload, model, check_booleans)
    return protocol.decode_v1(payload, model, check_booleans), None, None


STATIC_ROUTES: dict[str, Route] = {
    "/v2/health/live": Route("v2_health_live", GET, ServingApp.live),
    "/v2/health/ready": Route("v2_health_ready", GET, ServingApp.ready),
    "/v2": Route("v2_server_metadata", GET, ServingApp.server_metadata),
    "/v1/models": Route("v1_models", GET, ServingApp.v1_models),
    "/metrics": Route("metrics", GET, ServingApp.metrics),
}
V2_MODEL_ROUTES: dict[str, tuple[str, tuple[str, ...], Handler]] = {
    "": ("v2_model_metadata", GET, ServingApp.model_metadata),
    "ready": ("v2_model_ready", GET, ServingApp.model_ready),
    "infer": ("v2_infer", POST, ServingApp.infer),
    "distribution": ("v2_model_distribution", GET, ServingApp.distribution),
    "traffic": ("v2_model_traffic", GET, ServingApp.traffic_counters),
    "feedback": ("v2_feedback", POST, ServingApp.feedback),
    "shadow": ("v2_model_shadow", GET, ServingApp.shadow_comparison),
}


ROUTE_CACHE_SIZE = 256
_route_cache: dict[str, Route] = dict(STATIC_ROUTES)


def resolve(path: str) -> Route:
    """Path → route, remembered for the few paths a server sees (bounded: paths come from clients)."""
    route = _route_cache.get(path)
    if route is None:
        route = _parse(path)
        if len(_route_cache) < ROUTE_CACHE_SIZE:
            _route_cache[path] = route
    return route


def _parse(path: str) -> Route:
    """Model names and versions are path segments, never part of the metrics label."""
    if path.startswith("/v2/models/"):
        name, _, rest = path[len("/v2/models/") :].partition("/")
        version = None
        if rest.startswith("versions/"):
            version, _, rest = rest[len("versions/") :].partition("/")
        target = V2_MODEL_ROUTES.get(rest)
        if name and version != "" and target is not None:
            return Route(*target, model=name, version=version)
    elif path.startswith("/v1/models/"):
        name = path[len("/v1/models/") :]
        if name.endswith(":predict") and "/" not in name:
            return Route("v1_predict", POST, ServingApp.predict, model=name[: -len(":predict")])
        if name.endswith(":explain") and "/" not in name:
            return Route("v1_explain", POST, ServingApp.explain, model=name[: -len(":explain")])
        if name and "/" not in name and ":" not in name:
            return Route("v1_model_ready", GET, ServingApp.model_ready, model=name)
    raise NotFound(f"no such path: {path}")
