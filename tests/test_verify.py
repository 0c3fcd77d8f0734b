"""verify: good folders pass; flipped bytes, missing and truncated files are named."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from modelreg.cli import main
from modelreg.errors import VerifyError
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import LocalSource
from modelreg.torrent.verify import verify

KIB = 1024
PIECE = 16 * KIB
FILES = {"a.bin": 3 * PIECE + 100, "config.json": 700, "sub/b.bin": 2 * PIECE, "sub/empty": 0, "z.bin": 5000}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "Model"
    for i, (rel, size) in enumerate(FILES.items()):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(i).randbytes(size))
    return folder


def make_torrent(folder: Path, mode: str = "hybrid") -> Torrent:
    return Torrent.from_bytes(create_torrent(LocalSource.open(folder), piece_length=PIECE, mode=mode))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("mode", ["hybrid", "v1", "v2"])
def test_intact_folder_passes(model: Path, mode: str) -> None:
    report = verify(make_torrent(model, mode), model)
    assert report.ok
    assert report.files_checked == len(FILES)
    assert report.summary().startswith("OK: Model")


@pytest.mark.parametrize("mode, hashes", [("hybrid", ("v1", "v2")), ("v1", ("v1",)), ("v2", ("v2",))])
@pytest.mark.parametrize("rel, offset", [("a.bin", 2 * PIECE + 5), ("a.bin", 3 * PIECE + 99), ("z.bin", 0)])
def test_flipped_byte_names_file_and_piece(model: Path, mode: str, hashes: tuple, rel: str, offset: int) -> None:
    torrent = make_torrent(model, mode)
    flip(model / rel, offset)
    report = verify(torrent, model)
    assert not report.ok
    assert not report.missing and not report.wrong_size
    bad = report.bad_files()
    if mode == "v1":
        # A v1 piece may span files: every file it touches is named.
        assert rel in bad
    else:
        assert list(bad) == [rel]
    (piece,) = bad[rel]
    entry = next(e for e in torrent.layout if e.path_str == rel)
    assert piece.start <= offset < piece.end
    assert piece.piece == (entry.offset + offset) // PIECE
    assert piece.hashes == hashes
    assert f"bad pieces: {rel}: 1 piece(s)" in report.summary()
    assert f"piece {piece.piece}: bytes {piece.start}-{piece.end - 1}" in report.summary()


def test_missing_and_truncated_files_are_reported(model: Path) -> None:
    torrent = make_torrent(model)
    (model / "config.json").unlink()
    with open(model / "sub" / "b.bin", "r+b") as fh:
        fh.truncate(PIECE + 10)
    report = verify(torrent, model)
    assert report.missing == ["config.json"]
    assert [(w.path, w.expected, w.actual) for w in report.wrong_size] == [("sub/b.bin", 2 * PIECE, PIECE + 10)]
    assert list(report.bad_files()) == ["sub/b.bin"]
    assert [p.start for p in report.bad_pieces] == [PIECE]
    summary = report.summary()
    assert "missing: config.json" in summary
    assert f"wrong size: sub/b.bin: {PIECE + 10} bytes, expected {2 * PIECE}" in summary


def test_longer_file_is_a_wrong_size(model: Path) -> None:
    torrent = make_torrent(model)
    with open(model / "z.bin", "ab") as fh:
        fh.write(b"extra")
    report = verify(torrent, model)
    assert [(w.path, w.actual) for w in report.wrong_size] == [("z.bin", 5005)]
    assert not report.bad_pieces


def test_single_file_torrent_accepts_the_file_or_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(random.Random(5).randbytes(40_000))
    torrent = Torrent.from_bytes(create_torrent(LocalSource.open(path)))
    assert verify(torrent, path).ok
    assert verify(torrent, tmp_path).ok
    flip(path, 39_999)
    assert list(verify(torrent, tmp_path).bad_files()) == ["model.gguf"]


def test_unusable_arguments_raise_verify_error(model: Path, tmp_path: Path) -> None:
    torrent = make_torrent(model)
    with pytest.raises(VerifyError, match="no such file or folder"):
        verify(torrent, tmp_path / "absent")
    with pytest.raises(VerifyError, match="not a folder"):
        verify(torrent, model / "z.bin")
    (tmp_path / "junk.torrent").write_bytes(b"not a torrent")
    with pytest.raises(VerifyError, match="junk.torrent"):
        verify(tmp_path / "junk.torrent", model)


def test_verify_command_exit_codes(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "Model.torrent"
    write_torrent(create_torrent(LocalSource.open(model), piece_length=PIECE), out)
    assert main(["verify", str(out), str(model), "-q"]) == 0
    assert "OK: Model" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    flip(copy / "sub" / "b.bin", PIECE + 1)
    (copy / "z.bin").unlink()
    assert main(["verify", str(out), str(copy), "-q"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: Model: 2 file(s) with problems" in err
    assert "missing: z.bin" in err
    assert f"piece 6: bytes {PIECE}-{2 * PIECE - 1} (v1 and v2 hash mismatch)" in err
