"""Which s3:// objects a resource may read: its namespace's own areas and the prefixes an admin shares.

Without this check a resource in one namespace could name another team's data or model by its URI and
have Marina's Jobs and pods, which hold the operator's storage credentials, read it for them.

A URI is judged by its normal form (`kube.paths.normal_form`). A URI not already in normal form is
refused even when the normal form is inside: object stores read keys literally while gateways and
file-system backends resolve them, so only a plain key names the same object everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from marina.controller.kube.paths import SHARED_SETTING, inside, normal_form
from marina.controller.shared.fields import InvalidSpec


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
