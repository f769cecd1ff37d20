"""`marina operator`: run the kopf operator in-process (standalone, no peering).

    marina operator [--namespace NS ...] [--all-namespaces] [--liveness URL] [--verbose]

Settings come from the environment (see `marina.controller.settings`): MARINA_IMAGE,
MARINA_S3_ENDPOINT, MARINA_S3_SECRET, MARINA_S3_BUCKET, MARINA_NAMESPACES.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from typing import Any, cast

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


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
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    from marina.controller import handlers
    from marina.controller.settings import Settings

    settings = Settings.from_environment()
    namespaces = list(args.namespace) or list(settings.namespaces)
    clusterwide = args.all_namespaces or not namespaces
    kopf.configure(verbose=args.verbose)  # kopf sets up logging (one handler, its format)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # no line per liveness probe
    handlers.register(settings)
    logging.getLogger(__name__).info(
        "marina operator: image=%s storage=%s secret=%s scope=%s",
        settings.image,
        settings.s3_endpoint,
        settings.s3_secret,
        "all namespaces" if clusterwide else ",".join(namespaces),
    )
    kopf.run(
        # Named explicitly: kopf would otherwise ask the passwd database for a user name, and the
        # image's uid 65532 has no entry there.
        identity=cast(Any, os.environ.get("POD_NAME") or socket.gethostname()),
        standalone=True,
        clusterwide=clusterwide,
        namespaces=[] if clusterwide else namespaces,
        liveness_endpoint=None if args.liveness == "none" else args.liveness,
    )
    return 0
