"""Shared by the server tests: the example model's features and an in-process ASGI client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from marina.server.app import ServingApp

FEATURES = ["age", "bmi", "bp"]
TRAINING: dict[str, dict[str, Any]] = {  # the training split's statistics, as `marina train` records them
    "age": {"count": 100, "mean": 2.0, "std": 2.0, "min": 0.0, "max": 9.0, "missing": 0},
    "bmi": {"count": 100, "mean": 5.0, "std": 0.0, "min": 5.0, "max": 5.0, "missing": 0},
    "bp": {"count": 100, "mean": 7.5, "std": 3.0, "min": 1.0, "max": 20.0, "missing": 2},
}


@dataclass
class Client:
    """Synchronous calls into an ASGI app through httpx's in-process transport."""

    app: ServingApp

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://marina") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)
