"""Which objects are a resource's children: only those whose ownerReferences name it by uid.

Marina never updates, adopts or deletes anything else. An object of a child's name that is not ours
(a user's Service `web`, another tool's Deployment, a leftover of an earlier resource of the same name
that the garbage collector has not removed yet) blocks the resource with `NameConflict` and stays
exactly as it is. Giving it an ownerReference would make deleting the Marina resource delete it too.

Only a uid match counts, with no allowance for references without a uid: the API server refuses an
ownerReference whose uid is empty, so no version of Marina can have left one. A child is created with
a create (never an apply), so a foreign object that appears after Marina looked is not taken over either:
the create fails with AlreadyExists, and the object it finds is checked like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marina.contract import GROUP
from marina.controller.kube.client import KubeApi
from marina.controller.shared.builders import Owner
from marina.controller.shared.conditions import Outcome, State


def references(child: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(child["metadata"].get("ownerReferences") or [])


def owns(owner: Owner, child: Mapping[str, Any]) -> bool:
    return any(
        ref.get("uid") == owner.uid
        and ref.get("kind") == owner.kind
        and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/")
        for ref in references(child)
    )


def holder(owner: Owner, child: Mapping[str, Any]) -> str:
    """Whose the object in the way is, in words for the condition message."""
    refs = references(child)
    if not refs:
        return "it has no owner"
    ref = next((r for r in refs if r.get("controller")), refs[0])
    if (ref.get("kind"), ref.get("name")) == (owner.kind, owner.name):
        return f"it belongs to an earlier {owner.kind} {owner.name} (uid {ref.get('uid')}), not to this one"
    return f"it belongs to {ref.get('kind')} {ref.get('name')}"


class NameConflict(Exception):
    """A child's name is taken by an object this resource does not own."""

    def __init__(self, owner: Owner, child: Mapping[str, Any]) -> None:
        kind, name = child.get("kind", "object"), child["metadata"]["name"]
        super().__init__(
            f"{kind} {name} already exists and is not this {owner.kind}'s ({holder(owner, child)}); "
            f"Marina changes nothing: rename the {owner.kind} or remove that {kind} "
            "(Marina retries by itself)"
        )

    def outcome(self) -> Outcome:
        return Outcome(State.BLOCKED, "NameConflict", str(self))


def require_owned(owner: Owner, child: Mapping[str, Any] | None) -> None:
    """Raise NameConflict unless `child` is absent or this owner's."""
    if child is not None and not owns(owner, child):
        raise NameConflict(owner, child)


def create(kube: KubeApi, owner: Owner, body: Mapping[str, Any]) -> dict[str, Any]:
    """Create a child; when its name turns out to be taken (AlreadyExists), the object found must be ours."""
    created = kube.create(body)
    require_owned(owner, created)
    return created
