"""JSON in and out: orjson when installed (several times faster), the standard library otherwise.

Both decoders refuse NaN, Infinity and numbers that overflow a double, so every float that
`loads` returns is finite and the hot path need not check float64 inputs again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range for a double")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _stdlib_loads(data: bytes) -> Any:
    return json.loads(data, parse_float=_finite_float, parse_constant=_reject_constant)


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


loads: Callable[[bytes], Any]
dumps: Callable[[Any], bytes]

try:
    import orjson
except ModuleNotFoundError:  # pragma: no cover - exercised only in images without orjson
    loads, dumps = _stdlib_loads, _stdlib_dumps
else:
    loads, dumps = orjson.loads, orjson.dumps
