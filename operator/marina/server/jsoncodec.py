"""JSON in and out: orjson when installed (several times faster), the standard library otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


loads: Callable[[bytes], Any]
dumps: Callable[[Any], bytes]

try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - exercised only in images without orjson
    loads, dumps = json.loads, _stdlib_dumps
else:
    loads, dumps = orjson.loads, orjson.dumps
