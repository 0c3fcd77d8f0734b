"""The libtorrent session ``get`` and ``seed`` run: imported lazily, with settings that also work on loopback."""

from __future__ import annotations

import os
import warnings
from typing import Any

from modelreg.errors import SwarmError
from modelreg.torrent.ltsession import LOCAL_DHT, NO_PORT_MAPPING, lt

#: Seconds before libtorrent asks a failed web seed again (its default, 30 s, stalls small downloads).
URLSEED_WAIT_RETRY = 5


def session_settings(port: int = 0, *, dht: bool = True, lsd: bool = True, host: str = "0.0.0.0") -> dict[str, Any]:
    """Settings for a session listening on ``port`` (0: any free port).

    Several peers on one address are allowed (a machine's own seeders, or 127.0.0.1 in tests), and the
    DHT accepts nodes on private and loopback addresses, so a swarm of one organisation's machines (or of
    a test) works without the public DHT. UPnP and NAT-PMP stay off: a download tool does not open
    ports on the user's router.
    """
    lib = lt()
    listen = f"{host}:{port}" if host != "0.0.0.0" else f"0.0.0.0:{port},[::]:{port}"
    return {
        "listen_interfaces": listen,
        "enable_dht": dht,
        "enable_lsd": lsd,
        **NO_PORT_MAPPING,
        "allow_multiple_connections_per_ip": True,
        "urlseed_wait_retry": URLSEED_WAIT_RETRY,
        **LOCAL_DHT,
        "user_agent": "modelreg",
        # A hybrid torrent's pieces are checked twice (SHA-1 and the SHA-256 tree): use every core for it.
        "hashing_threads": max(2, os.cpu_count() or 1),
        "peer_fingerprint": lib.generate_fingerprint("MR", 0, 1, 0, 0),
        "alert_mask": lib.alert.category_t.error_notification | lib.alert.category_t.status_notification
        | lib.alert.category_t.storage_notification | lib.alert.category_t.block_progress_notification
        | lib.alert.category_t.file_progress_notification,
    }


def make_session(port: int = 0, *, dht: bool = True, lsd: bool = True, host: str = "0.0.0.0") -> Any:
    """A started libtorrent session (see :func:`session_settings`).

    Raises:
        SwarmError: libtorrent is missing, or cannot listen on ``port`` (when one is given).
    """
    lib = lt()
    settings = session_settings(port, dht=dht, lsd=lsd, host=host)
    if port:
        settings["max_retry_port_bind"] = 0  # the port asked for, or an error (not a neighbour port)
    try:
        ses = lib.session(settings)
    except RuntimeError as exc:
        raise SwarmError(f"cannot start a BitTorrent session on port {port}: {exc}") from None
    if port and ses.listen_port() != port:
        raise SwarmError(f"cannot listen on port {port}: is it in use? (pick another with --port)")
    return ses


def listen_port(ses: Any) -> int:
    """The TCP port the session listens on (0 if it does not listen)."""
    return ses.listen_port()


def torrent_params(torrent_bytes: bytes, save_path: str) -> Any:
    """``add_torrent_params`` for a .torrent's bytes, saved under ``save_path``.

    Raises:
        SwarmError: libtorrent cannot read the torrent.
    """
    lib = lt()
    atp = lib.add_torrent_params()
    try:
        atp.ti = lib.torrent_info(torrent_bytes)
    except RuntimeError as exc:
        raise SwarmError(f"libtorrent cannot read the torrent: {exc}") from None
    atp.save_path = save_path
    return atp


def flush_writes(handle: Any) -> None:
    """Ask libtorrent for a write fence on ``handle``'s files: its ``cache_flushed_alert`` comes after every
    block queued before it is written (a ``release_files`` fence job in its disk threads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 2.0, still the one fence
        handle.flush_cache()
