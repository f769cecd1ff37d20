"""`marina operator`: run the kopf operator in-process.

    marina operator [--namespace NS ...] [--all-namespaces] [--liveness URL] [--peering NAME]
                    [--metrics HOST:PORT] [--verbose]

Replicas take turns through kopf's peering (the ClusterKopfPeering NAME, default `marina`, which
manifests/operator creates; watching only some namespaces, the KopfPeering NAME in each of them, which
manifests/operator-namespaced/namespace creates): each picks a random priority, only the highest runs,
and the other takes over when it stops or stops writing to the peering object (`--peering none` runs
standalone: for one operator outside the cluster, where no peering object exists).

Settings come from the environment (see `marina.controller.kube.settings`): MARINA_IMAGE,
MARINA_S3_ENDPOINT, MARINA_S3_SECRET, MARINA_S3_BUCKET, MARINA_NAMESPACES.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import socket
from typing import Any, cast

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_PEERING = "marina"
DEFAULT_METRICS = "0.0.0.0:8081"
# Each replica's kopf priority, drawn at start: the highest runs. Ties would pause both (kopf's rule);
# one in 2**31 per pair of replicas.
PRIORITIES = range(1, 2**31)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; default: MARINA_NAMESPACES, else all)",
    )
    parser.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--liveness",
        default=DEFAULT_LIVENESS,
        help=f"liveness endpoint served by kopf (default {DEFAULT_LIVENESS}; 'none' to disable)",
    )
    parser.add_argument(
        "--peering",
        default=DEFAULT_PEERING,
        help=f"kopf peering object shared by the replicas (default {DEFAULT_PEERING}; 'none' for standalone)",
    )
    parser.add_argument(
        "--metrics",
        default=DEFAULT_METRICS,
        help=f"host:port serving Prometheus metrics (default {DEFAULT_METRICS}; 'none' to disable)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from marina.controller import handlers
    from marina.controller.kube import metrics
    from marina.controller.kube.leadership import Peering
    from marina.controller.kube.settings import Settings

    settings = Settings.from_environment()
    namespaces = list(args.namespace) or list(settings.namespaces)
    clusterwide = args.all_namespaces or not namespaces
    kopf.configure(verbose=args.verbose)  # kopf sets up logging (one handler, its format)
    for quiet in ("aiohttp.access", "kopf.activities.probe"):  # no line per liveness probe
        logging.getLogger(quiet).setLevel(logging.WARNING)
    # Named explicitly: kopf would otherwise ask the passwd database for a user name, and the image's uid
    # 65532 has no entry there. The pod's name, so the peering object says which pod leads.
    identity = os.environ.get("POD_NAME") or socket.gethostname()
    standalone = args.peering == "none"
    priority = random.SystemRandom().choice(PRIORITIES)
    # Namespace-scoped, kopf keeps the same entries in every watched namespace's KopfPeering: read the first.
    peering_namespace = "" if clusterwide else namespaces[0]
    peering = None if standalone else Peering(args.peering, identity, priority, peering_namespace)
    handlers.register(settings, peering=peering)
    if args.metrics != "none":
        metrics.serve(args.metrics)
    logging.getLogger(__name__).info(
        "marina operator: image=%s storage=%s secret=%s scope=%s peering=%s",
        settings.image,
        settings.s3_endpoint,
        settings.s3_secret,
        "all namespaces" if clusterwide else ",".join(namespaces),
        "standalone" if peering is None else f"{peering.name} as {identity}, priority {peering.priority}",
    )
    kopf.run(
        identity=cast(Any, identity),
        standalone=standalone,
        peering_name=None if peering is None else peering.name,
        priority=None if peering is None else peering.priority,
        clusterwide=clusterwide,
        namespaces=[] if clusterwide else namespaces,
        liveness_endpoint=None if args.liveness == "none" else args.liveness,
    )
    return 0
