"""The content type of `/metrics`: the text exposition format 0.0.4, which every Prometheus reads
(`metrics.render` writes it with prometheus_client)."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4.encode()
