"""Which s3:// objects a resource may read: its namespace's own areas and the prefixes an admin shares.

Without this check a resource in one namespace could name another team's data or model by its URI and
have Marina's Jobs and pods, which hold the operator's storage credentials, read it for them.

A URI is judged by its normal form: percent-escapes decoded (repeatedly, so `%252e` is caught),
backslashes read as slashes, anything after `?` or `#` dropped (as `urlparse` does), empty and `.`
segments dropped and `..` resolved. A URI not already in normal form is refused even when the normal
form is inside: object stores read keys literally while gateways and file-system backends resolve them,
so only a plain key names the same object everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote

from marina.controller.shared.fields import InvalidSpec

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


def require_inside(field: str, uri: str, own: Sequence[str], shared: Sequence[str] = ()) -> None:
    """Raise InvalidSpec naming `field` unless `uri` plainly names an object under one of the prefixes."""
    normal = normal_form(uri)
    if normal is None or not inside(normal, (*own, *shared)):
        resolved = f" (it resolves to {normal})" if normal and normal != uri else ""
        raise InvalidSpec(
            field,
            f"{uri}{resolved} is outside this namespace's storage area {' or '.join(own)}; "
            f"put the object there, or ask a cluster admin to share its prefix ({SHARED_SETTING})",
        )
    if normal != uri or "%" in uri:
        raise InvalidSpec(
            field,
            f"{uri} is not a plain object path (it reads as {normal}); "
            "write it without '.', '..', '//', '\\', '?', '#' or %-escapes",
        )


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
