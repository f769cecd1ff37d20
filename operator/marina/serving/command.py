"""`marina serve`: verify and load a model artifact, then serve it until SIGTERM.

The model is loaded and its sha256 checked before the port opens, so a pod whose model is wrong or
unreachable exits non-zero with one clear line instead of answering with the wrong model.
"""

from __future__ import annotations

import argparse
import gc
import logging
import re
import sys
import warnings

from threadpoolctl import threadpool_limits

from marina.model import artifact
from marina.serving import limits, outputs, payloads, shadow
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel, default_name, is_valid_name
from marina.storage import StorageError

GRACEFUL_SHUTDOWN_SECONDS = 20  # inside the pod's 30 s grace period, after its 5 s preStop sleep
log = logging.getLogger("marina.serving")


def _sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise argparse.ArgumentTypeError(f"expected 64 hexadecimal characters, got {value!r}")
    return value.lower()


def _name(value: str) -> str:
    if not is_valid_name(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} cannot be a model name: use letters, digits, '.', '_' or '-' (names go in URLs)"
        )
    return value


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {value}")
    return number


def _percent(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value}")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="PATH_OR_S3",
        help="model artifact: a local path or s3://bucket/key (MinIO endpoint from MARINA_S3_ENDPOINT)",
    )
    parser.add_argument(
        "--sha256",
        type=_sha256,
        metavar="HEX",
        help="expected sha256 of the artifact file; refuse to start on a mismatch",
    )
    parser.add_argument(
        "--name",
        type=_name,
        help="serve the model under this name (default: the artifact's dataset name, else 'model')",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    defaults = limits.ServerLimits()
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=defaults.max_body_bytes,
        help=f"reject larger request bodies with 413 (default: {defaults.max_body_bytes})",
    )
    parser.add_argument(
        "--body-budget-bytes",
        type=_positive,
        help="request-body bytes held at once before answering 503 (default: from the cgroup memory limit)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=defaults.header_timeout_seconds,
        help=f"seconds to send the headers, else 408 (default: {defaults.header_timeout_seconds:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        default=defaults.body_timeout_seconds,
        help=f"seconds to send the body, else 408 (default: {defaults.body_timeout_seconds:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive,
        default=defaults.max_connections,
        help=f"connections served at once; more get 503 (default: {defaults.max_connections})",
    )
    parser.add_argument(
        "--extrapolation",
        type=str.lower,
        default=outputs.ALLOW,
        choices=outputs.EXTRAPOLATION_POLICIES,
        help="rows outside the training data (leverage, range, unseen category): allow answers them and "
        "counts them in /metrics, reject answers 422 naming the row and the reason (default: allow)",
    )
    parser.add_argument(
        "--track",
        type=str.lower,
        default=payloads.STABLE,
        choices=payloads.TRACKS,
        help="which of a ModelDeployment's Deployments this pod belongs to, for the payload log "
        "(default: stable)",
    )
    parser.add_argument(
        "--log-prefix",
        metavar="S3_PREFIX",
        help="keep a payload log (and take feedback) under this s3:// prefix or folder: "
        "predictions/date=YYYY-MM-DD/ and feedback/date=YYYY-MM-DD/ Parquet parts (default: none)",
    )
    parser.add_argument(
        "--log-sample-rate",
        type=_share,
        default=1.0,
        help="share of answered requests logged, chosen by request id (default: 1)",
    )
    parser.add_argument(
        "--log-flush-rows",
        type=_positive,
        default=10_000,
        help="write a part once this many rows wait (at most twice as many are held; default: 10000)",
    )
    parser.add_argument(
        "--log-flush-seconds",
        type=_seconds,
        default=60.0,
        help="write the waiting rows at least this often (default: 60)",
    )
    parser.add_argument(
        "--shadow-url",
        metavar="URL",
        help="copy a share of the answered predict/infer requests to this challenger (http://host[:port]) "
        "after answering them, and compare its predictions with this model's (default: none)",
    )
    parser.add_argument(
        "--shadow-percent",
        type=_percent,
        default=100.0,
        help="percentage of the answered requests copied to the challenger (default: 100)",
    )
    parser.add_argument(
        "--shadow-challenger",
        default="",
        metavar="VERSION",
        help="the challenger's model version, reported back with the comparison (default: none)",
    )
    parser.add_argument(
        "--shadow-concurrency",
        type=_positive,
        default=4,
        help="copied requests in flight to the challenger at once (default: 4)",
    )
    parser.add_argument(
        "--shadow-queue",
        type=_positive,
        default=256,
        help="copied requests waiting to be sent; more are dropped and counted (default: 256)",
    )
    parser.add_argument(
        "--shadow-timeout",
        type=_seconds,
        default=2.0,
        help="seconds the challenger has to answer a copied request (default: 2)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def load_model(uri: str, sha256: str | None, name: str | None) -> ServedModel:
    """Read and verify the artifact; raises ArtifactError or StorageError with a clear message."""
    loaded = artifact.load(uri, sha256)
    return ServedModel.from_artifact(loaded, name or default_name(loaded), uri)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Overflowing inputs are answered with a 400 naming the row; numpy's warning would only add noise.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="marina.serving.model")
    try:
        model = load_model(args.model, args.sha256, args.name)
    except (artifact.ArtifactError, StorageError, OSError) as exc:
        print(f"marina serve: cannot serve {args.model}: {exc}", file=sys.stderr)
        return 1
    log.info(
        "serving model '%s' version %s (sha256 %s, %d features) from %s on %s:%d",
        model.name,
        model.version,
        model.sha256,
        model.n_features,
        model.source,
        args.host,
        args.port,
    )
    try:
        server_limits = limits_from_args(args)
    except ValueError as exc:
        print(f"marina serve: {exc}", file=sys.stderr)
        return 2
    log.info(
        "limits: bodies up to %d bytes, %d bytes of bodies at once, headers within %g s, bodies within %g s",
        server_limits.max_body_bytes,
        server_limits.body_budget_bytes,
        server_limits.header_timeout_seconds,
        server_limits.body_timeout_seconds,
    )
    log.info("rows outside the training data: %s", args.extrapolation)
    logging_settings = log_settings(args)
    if logging_settings is not None:
        log.info(
            "payload log: %g of the requests under %s, parts of %d rows or every %g s (track %s)",
            logging_settings.sample_rate,
            logging_settings.prefix,
            logging_settings.flush_rows,
            logging_settings.flush_seconds,
            logging_settings.track,
        )
    try:
        shadowing = shadow_settings(args)
    except ValueError as exc:
        print(f"marina serve: {exc}", file=sys.stderr)
        return 2
    if shadowing is not None:
        log.info(
            "shadow: %g %% of the answered requests copied to %s (challenger %s), %d at once, queue of %d",
            shadowing.percent,
            shadowing.url,
            shadowing.challenger or "unnamed",
            shadowing.concurrency,
            shadowing.queue_size,
        )
    app = ServingApp(
        model,
        limits=server_limits,
        extrapolation=args.extrapolation,
        logging=logging_settings,
        shadowing=shadowing,
    )
    try:
        return serve(app, args.host, args.port, args.log_level)
    finally:
        app.close()


def log_settings(args: argparse.Namespace) -> payloads.LogSettings | None:
    """The payload log the flags ask for, or None without --log-prefix."""
    if not args.log_prefix:
        return None
    return payloads.LogSettings(
        prefix=args.log_prefix,
        sample_rate=args.log_sample_rate,
        flush_rows=args.log_flush_rows,
        flush_seconds=args.log_flush_seconds,
        track=args.track,
    )


def shadow_settings(args: argparse.Namespace) -> shadow.ShadowSettings | None:
    """The mirror the flags ask for, or None without --shadow-url."""
    if not args.shadow_url:
        return None
    return shadow.ShadowSettings(
        url=args.shadow_url,
        percent=args.shadow_percent,
        challenger=args.shadow_challenger,
        concurrency=args.shadow_concurrency,
        queue_size=args.shadow_queue,
        timeout_seconds=args.shadow_timeout,
    )


def limits_from_args(args: argparse.Namespace) -> limits.ServerLimits:
    """The flags, with the body budget derived from this container's memory limit unless given."""
    budget = args.body_budget_bytes or limits.body_budget(
        limits.memory_limit_bytes(), limits.resident_bytes(), args.max_body_bytes
    )
    return limits.ServerLimits(
        max_body_bytes=args.max_body_bytes,
        body_budget_bytes=budget,
        header_timeout_seconds=args.header_timeout,
        body_timeout_seconds=args.body_timeout,
        max_connections=args.max_connections,
    )


def serve(app: ServingApp, host: str, port: int, log_level: str = "info") -> int:
    """Run uvicorn (uvloop and httptools when installed) until SIGTERM/SIGINT; in-flight requests finish."""
    import uvicorn

    from marina.serving.connection import guarded_protocol

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http=guarded_protocol(app.limits, app.requests.refuse),
        limit_concurrency=app.limits.max_connections,
        lifespan="on",
        access_log=False,
        # No X-Forwarded-For rewriting: nothing here reads the client's address, and the middleware
        # cost 1 % of a single-row request.
        proxy_headers=False,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    # One event loop answers every request: BLAS threads could only contend with it (and OpenBLAS's spin,
    # billed to this process, after a flush's products of 1,024 rows).
    threadpool_limits(limits=1, user_api="blas")
    gc.freeze()  # start-up objects (modules, the model) leave the collector's view: shorter pauses
    server.run()
    return 0 if server.started else 1
