"""Both JSON decoders keep the invariant the hot path relies on: every float is finite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from marina.serving import jsoncodec

DECODERS: list[Callable[[bytes], Any]] = [jsoncodec.loads, jsoncodec._stdlib_loads]


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize("text", [b"[NaN]", b"[Infinity]", b"[-Infinity]", b"[1e400]", b"[-1e999]"])
def test_non_finite_numbers_are_malformed(decode: Callable[[bytes], Any], text: bytes) -> None:
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.parametrize("decode", DECODERS)
def test_ordinary_json_decodes(decode: Callable[[bytes], Any]) -> None:
    assert decode(b'{"a": [1, 2.5, -3e-2, 1.7976931348623157e308], "b": null}') == {
        "a": [1, 2.5, -0.03, 1.7976931348623157e308],
        "b": None,
    }


def test_encoders_agree() -> None:
    value = {"model_name": "m", "outputs": [{"data": [1.5, -2.0, 3.0]}], "id": "é"}
    assert jsoncodec.dumps(value) == jsoncodec._stdlib_dumps(value).replace(b"\\u00e9", "é".encode())
