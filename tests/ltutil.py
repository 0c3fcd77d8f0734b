"""libtorrent as the oracle: make torrents with it and read torrents the way it does; a DHT of libtorrent
nodes on 127.0.0.1 (:func:`loopback_dht`)."""

from __future__ import annotations

from pathlib import Path

import libtorrent as lt

from modelreg.torrent.ltsession import LOCAL_DHT, NO_PORT_MAPPING

#: A DHT node on 127.0.0.1 that bootstraps only from the nodes it is given.
LOOPBACK_DHT = {
    "listen_interfaces": "127.0.0.1:0", "enable_dht": True, "enable_lsd": False, **NO_PORT_MAPPING, **LOCAL_DHT,
    "dht_bootstrap_nodes": "", "alert_mask": 0,
    # the nodes share one address: libtorrent would ban it past 5 packets a second
    "dht_block_ratelimit": 100_000, "dht_upload_rate_limit": 1 << 22,
}


def make_torrent(
    root: Path,
    files: dict[str, bytes],
    *,
    piece_length: int = 16384,
    mode: str = "hybrid",
    webseeds: tuple[str, ...] = (),
    trackers: tuple[tuple[str, int], ...] = (),
    private: bool = False,
) -> bytes:
    """Write ``files`` under ``root`` and return the torrent libtorrent makes of them.

    A single key without '/' makes a single-file torrent; otherwise keys are ``<folder>/<path>``.
    """
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    top = {rel.split("/")[0] for rel in files}
    assert len(top) == 1, "one torrent folder or one file"
    fs = lt.file_storage()
    lt.add_files(fs, str(root / top.pop()))
    flags = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}[mode]
    ct = lt.create_torrent(fs, piece_length, flags)
    for url in webseeds:
        ct.add_url_seed(url)
    for url, tier in trackers:
        ct.add_tracker(url, tier)
    ct.set_priv(private)
    lt.set_piece_hashes(ct, str(root))
    return lt.bencode(ct.generate())


def lt_read(data: bytes) -> dict:
    """What libtorrent reads from torrent bytes, pad files left out like modelreg does."""
    ti = lt.torrent_info(data)
    fs = ti.files()
    real = [i for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]
    hashes = ti.info_hashes()
    return {
        "name": ti.name(),
        "infohash_v1": str(hashes.v1) if hashes.has_v1() else None,
        "infohash_v2": str(hashes.v2) if hashes.has_v2() else None,
        "total_size": sum(fs.file_size(i) for i in real),
        "file_count": len(real),
        "files": [(fs.file_path(i), fs.file_size(i)) for i in real],
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "webseeds": [w["url"] for w in ti.web_seeds()],
        "trackers": [t.url for t in ti.trackers()],
        "private": ti.priv(),
    }


def loopback_dht(count: int = 4) -> list:
    """``count`` libtorrent DHT nodes on 127.0.0.1, each bootstrapped from the others."""
    sessions = [lt.session(LOOPBACK_DHT) for _ in range(count)]
    ports = [s.listen_port() for s in sessions]
    for s in sessions:
        for port in ports:
            if port != s.listen_port():
                s.add_dht_node(("127.0.0.1", port))
    return sessions
