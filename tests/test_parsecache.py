"""The build's parse cache gives back what the site renders from: files and the layout with pad files."""

from __future__ import annotations

from modelreg.site.parsecache import ParseCache
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import LocalSource


def test_a_cached_torrent_keeps_its_pad_files(tmp_path):
    # aria2c's --select-file index counts pad files (issue 9): a torrent read back from the cache must
    # still have them in its layout, in order, or every per-file command on a rebuilt page is lost.
    folder = tmp_path / "Model"
    folder.mkdir()
    for name, size in (("a.bin", 40_000), ("b.json", 300), ("c.bin", 70_001)):
        (folder / name).write_bytes(bytes([len(name)]) * size)
    path = tmp_path / "Model.torrent"
    write_torrent(create_torrent(LocalSource.open(folder), piece_length=16384), path)
    fresh = Torrent.read(path)
    assert any(f.is_pad for f in fresh.layout)

    first = ParseCache(tmp_path / "parse.cache")
    first.read(path)
    first.save()
    cached = ParseCache(tmp_path / "parse.cache").read(path)
    assert not cached.raw  # it did come from the cache
    shape = lambda fs: [(f.path, f.size, f.offset, f.is_pad) for f in fs]  # noqa: E731
    assert shape(cached.layout) == shape(fresh.layout)
    assert shape(cached.files) == shape(fresh.files)
