"""libtorrent, imported on first use, and the session settings every modelreg session shares.

Only ``get``, ``seed`` (:mod:`modelreg.swarm.session`) and ``health``'s DHT lookups
(:mod:`modelreg.health.dht`) start libtorrent sessions; the other commands never import it. Both kinds of
session take :data:`NO_PORT_MAPPING` and, where the DHT's nodes are on one host or a private network,
:data:`LOCAL_DHT` from here.
"""

from __future__ import annotations

from types import ModuleType

from modelreg.errors import LibtorrentMissingError

#: A modelreg session never opens ports on the user's router (UPnP, NAT-PMP).
NO_PORT_MAPPING = {"enable_upnp": False, "enable_natpmp": False}

#: A DHT of nodes on one host or private network (an organisation's machines, 127.0.0.1 in tests):
#: libtorrent's defences against a public-DHT attacker (one node per IP, node ids derived from the IP,
#: no private addresses) would keep every such node out.
LOCAL_DHT = {
    "dht_restrict_routing_ips": False,
    "dht_restrict_search_ips": False,
    "dht_prefer_verified_node_ids": False,
    "dht_enforce_node_id": False,
    "dht_ignore_dark_internet": False,
}


def lt() -> ModuleType:
    """The libtorrent module (imported on first use).

    Raises:
        LibtorrentMissingError: the libtorrent Python bindings are not installed.
    """
    try:
        import libtorrent
    except ImportError as exc:
        raise LibtorrentMissingError(
            f"the libtorrent Python bindings are needed (pip install 'libtorrent>=2.0.9'): {exc}") from None
    return libtorrent
