"""libtorrent as the oracle: make torrents with it and read torrents the way it does."""

from __future__ import annotations

from pathlib import Path

import libtorrent as lt


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
