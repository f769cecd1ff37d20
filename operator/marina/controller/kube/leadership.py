"""Which replica leads: kopf's peering rule, read from the same peering object.

Replicas find each other through kopf's peering: each writes `{identity: {priority, lifetime,
lastseen}}` into the status of the ClusterKopfPeering object every few seconds (in the namespace-scoped
install, which holds no cluster-wide rights, into the KopfPeering of that name in each watched namespace,
the same entries in each), and kopf pauses every watch and handler of a replica while another live
replica has a priority at least as high as its own (kopf._core.engines.peering). Each replica picks a
random priority at start, so exactly one runs.

The operator's own periodic work (re-checks, drift checks; see `background`) is not a kopf handler, so
kopf cannot pause it: `leads` applies kopf's rule to the peering object to know whether to run it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_VERSION, KIND, NAMESPACED_KIND = "kopf.dev/v1", "ClusterKopfPeering", "KopfPeering"
DEFAULT_LIFETIME = 60  # kopf assumes this for a peer that states none


@dataclass(frozen=True)
class Peering:
    """This replica's place in kopf's peering: the object's name, its identity and its priority, and
    the namespace whose KopfPeering it reads ("" for the ClusterKopfPeering of a cluster-wide install)."""

    name: str
    identity: str
    priority: int
    namespace: str = ""

    @property
    def clusterwide(self) -> bool:
        return not self.namespace

    @property
    def kind(self) -> str:
        return KIND if self.clusterwide else NAMESPACED_KIND


def alive(peer: Mapping[str, Any], now: datetime.datetime) -> bool:
    """Seen within its lifetime (a peer that said goodbye wrote lifetime 0, or removed itself)."""
    try:
        lastseen = datetime.datetime.fromisoformat(str(peer["lastseen"]))
        lifetime = int(peer.get("lifetime", DEFAULT_LIFETIME))
    except (KeyError, TypeError, ValueError):
        return False
    if lastseen.tzinfo is None:
        lastseen = lastseen.replace(tzinfo=datetime.UTC)
    return lastseen + datetime.timedelta(seconds=lifetime) > now


def leader(peers: Mapping[str, Any], now: datetime.datetime) -> str | None:
    """The identity kopf runs among these peers, if exactly one has the highest live priority."""
    live = {
        identity: int(peer.get("priority", 0))
        for identity, peer in peers.items()
        if isinstance(peer, Mapping) and alive(peer, now)
    }
    if not live:
        return None
    top = max(live.values())
    winners = [identity for identity, priority in live.items() if priority == top]
    return winners[0] if len(winners) == 1 else None


def leads(peers: Mapping[str, Any], identity: str, now: datetime.datetime) -> bool:
    """Whether kopf runs the replica `identity`: it is alive and no other live peer's priority is as
    high as its own (a tie pauses both, as kopf does)."""
    return leader(peers, now) == identity
