"""s3:// paths as the most lenient reader resolves them, and the prefixes a cluster admin shares with every
namespace (`MARINA_SHARED_PREFIXES`): what `settings` reads and `shared.storage_area` checks URIs against.

A URI is judged by its normal form: percent-escapes decoded (repeatedly, so `%252e` is caught),
backslashes read as slashes, anything after `?` or `#` dropped (as `urlparse` does), empty and `.`
segments dropped and `..` resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

S3 = "s3://"
SHARED_SETTING = "MARINA_SHARED_PREFIXES"


def normal_form(uri: str) -> str | None:
    """The URI as the most lenient reader would resolve it; None when `..` climbs out of the bucket."""
    decoded = uri
    while (step := unquote(decoded)) != decoded:
        decoded = step
    decoded = decoded.replace("\\", "/")
    if not decoded.startswith(S3):
        return None
    bucket, _, key = decoded[len(S3) :].partition("/")
    key = key.split("?", 1)[0].split("#", 1)[0]
    parts: list[str] = []
    for segment in key.split("/"):
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        elif segment not in ("", "."):
            parts.append(segment)
    folder = "/" if key.endswith("/") and parts else ""  # a prefix of many parts keeps its slash
    return f"{S3}{bucket}/{'/'.join(parts)}{folder}"


def inside(uri: str, prefixes: Sequence[str]) -> bool:
    return any(uri.startswith(prefix) for prefix in prefixes)


def shared_prefixes(setting: str) -> tuple[str, ...]:
    """The admin's comma-separated shared prefixes, each ending in `/` (so `s3://b/x` never shares `x-y`)."""
    prefixes = []
    for entry in (part.strip() for part in setting.split(",")):
        if not entry:
            continue
        normal = normal_form(entry)
        if (
            normal is None
            or normal.rstrip("/") != entry.rstrip("/")
            or "%" in entry
            or normal.startswith(S3 + "/")
        ):
            raise ValueError(f"{SHARED_SETTING}: {entry!r} is not a plain s3://bucket/prefix")
        prefixes.append(normal if normal.endswith("/") else f"{normal}/")
    return tuple(prefixes)
