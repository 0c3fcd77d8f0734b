"""One path-component rule (modelreg.paths): what ``create`` writes the reader reads, what the reader
refuses ``create`` refuses with an error naming the file, and the gateway serves no other paths."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from modelreg.cli import main
from modelreg.errors import TorrentError, WebseedError
from modelreg.paths import component_problem
from modelreg.torrent.create import LocalSource, create_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.webseed.routes import Served, ServeSet

COMMIT = "c" * 40
#: File names a disk can hold; the rule decides which ones a torrent may carry.
DISK_NAMES = [
    "a\\b.bin", "a\\..\\..\\b.bin", "tab\there", "new\nline", "bell\x07", "del\x7f", "esc\x1b[31m",
    "plain.bin", "with space.bin", "...", ".hidden", "a..b", "ünïcødé-模型.bin", "-dash", "~tilde", "'\"quotes\"'",
]
#: Names no file on disk can have; only a crafted torrent carries them.
TORRENT_ONLY = ["", ".", "..", "a/b", "nul\x00"]


def test_the_rule():
    refused = {n for n in DISK_NAMES + TORRENT_ONLY if component_problem(n)}
    assert refused == {"a\\b.bin", "a\\..\\..\\b.bin", "tab\there", "new\nline", "bell\x07", "del\x7f",
                       "esc\x1b[31m", "", ".", "..", "a/b", "nul\x00"}


def _placeholder(name: str) -> str:
    """A harmless name of the same length in UTF-8, to make a torrent and then swap the real name in."""
    return "x" * len(name.encode())


def _crafted(tmp_path: Path, name: str, single: bool) -> bytes:
    """A torrent (hybrid: v1 path lists and a v2 file tree) with ``name`` as a file name, made from a placeholder."""
    folder = tmp_path / "src" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    stand_in = _placeholder(name) if name else "z"
    (folder / stand_in).write_bytes(b"w" * 1000)
    (folder / "other.bin").write_bytes(b"o" * 10)
    data = create_torrent(LocalSource.open(folder / stand_in if single else folder))
    if not name:
        return data.replace(b"1:z", b"0:")
    encoded = stand_in.encode()
    assert data.count(encoded) >= 1
    return data.replace(b"%d:%s" % (len(encoded), encoded), b"%d:%s" % (len(name.encode()), name.encode()))


@pytest.mark.parametrize("name", DISK_NAMES + TORRENT_ONLY)
@pytest.mark.parametrize("single", [False, True])
def test_the_reader_follows_the_rule(tmp_path, name, single):
    data = _crafted(tmp_path, name, single)
    if component_problem(name):
        with pytest.raises(TorrentError, match="unsafe (name|path component)|empty name"):
            Torrent.from_bytes(data, source="crafted.torrent")
    else:
        torrent = Torrent.from_bytes(data, source="crafted.torrent")
        names = {torrent.name} if single else {f.path[-1] for f in torrent.files}
        assert name in names


@pytest.mark.parametrize("name", DISK_NAMES)
def test_create_follows_the_same_rule_and_names_the_file(tmp_path, capsys, name):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "sub").mkdir()
    (folder / "sub" / name).write_bytes(b"w" * 1000)
    out = tmp_path / "out.torrent"
    code = main(["create", "-q", str(folder), "-o", str(out)])
    err = capsys.readouterr().err
    if component_problem(name):
        assert code == 1 and not out.exists()
        assert err.count("\n") == 1 and "invalid file path" in err and repr(name) in err
    else:
        assert code == 0, err
        assert ("sub", name) in {f.path for f in Torrent.read(out).files}


@pytest.mark.parametrize("name", DISK_NAMES)
def test_the_gateway_serves_exactly_the_paths_the_rule_allows(name):
    # A torrent the reader accepts always has good names; the gateway's routes refuse the others by the same rule.
    serve = ServeSet([Served.of("Org/Model", COMMIT, None)])
    url = f"/v1/Org/Model/{COMMIT}/Model/sub/{quote(name, safe='')}"
    if component_problem(name):
        with pytest.raises(WebseedError) as caught:
            serve.route(url)
        assert caught.value.status == 404
    else:
        assert serve.route(url).path == f"sub/{name}"
