"""modelreg's torrents against libtorrent's: same files, same piece length -> same bytes."""

from __future__ import annotations

import hashlib
import os
import random
import warnings
import zlib
from pathlib import Path

import bencodepy
import pytest

from modelreg import __version__
from modelreg.cli import main
from modelreg.errors import CreateError
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.layout import default_piece_length, plan_layout
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import LocalSource, SourceFile

lt = pytest.importorskip("libtorrent")

KIB = 1024
MIB = 1024 * KIB
WEBSEED = "http://127.0.0.1:8080/v1/Org/Model/0123456789abcdef0123456789abcdef01234567/"
MODES = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}


def write(path: Path, size: int, seed: int, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(seed).randbytes(size))
    if executable:
        path.chmod(0o755)


# Each shape: (piece length or None for the default, {relative path: size}, executable paths).
SHAPES: dict[str, tuple[int | None, dict[str, int], set[str]]] = {
    "one-file-in-folder": (16 * KIB, {"model.safetensors": 70_000}, set()),
    "many-small-files": (16 * KIB, {f"shard-{i:02d}.bin": (i * 997) % 5000 + 1 for i in range(30)}, set()),
    "piece-boundaries": (
        16 * KIB,
        {"exact": 16 * KIB, "plus-one": 16 * KIB + 1, "minus-one": 16 * KIB - 1,
         "two-exact": 32 * KIB, "two-plus-one": 32 * KIB + 1, "three-minus-one": 48 * KIB - 1},
        set(),
    ),
    "empty-files": (
        16 * KIB,
        {"0-empty-first": 0, "a.bin": 20_000, "m-empty": 0, "sub/empty": 0, "z.bin": 40_000, "zz-empty-last": 0},
        set(),
    ),
    "nested-and-executable": (
        32 * KIB,
        {"B/upper": 5000, "_under": 33_000, "a/b/c/deep.bin": 100_000, "a/b/x": 7, "a/y": 65_536,
         "run.sh": 300, "tokenizer/vocab.json": 45_000, "é-unicode.txt": 1234},
        {"run.sh", "_under"},
    ),
    "default-piece-length": (None, {"weights.bin": 3_000_000, "config.json": 700}, set()),
    "large-16mib-pieces": (16 * MIB, {"big.bin": 16 * MIB + 1, "small.json": 1000}, set()),
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    folders = {}
    for name, (_, files, executable) in SHAPES.items():
        folder = root / name / "Model"
        folder.mkdir(parents=True)
        for rel, size in sorted(files.items()):
            write(folder / rel, size, seed=zlib.crc32(f"{name}/{rel}".encode()), executable=rel in executable)
        folders[name] = folder
    single = root / "single" / "model.gguf"
    write(single, 100_000, seed=7)
    folders["single-file"] = single
    return folders


def libtorrent_bytes(path: Path, piece_length: int | None, mode: str, source: LocalSource,
                     trackers: tuple[str, ...] = (), webseeds: tuple[str, ...] = (WEBSEED,)) -> bytes:
    """What libtorrent makes of ``path``, without its creation date."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        if mode == "v1" and not source.single_file:
            # libtorrent keeps v1-only files in directory-listing order, which depends on the file
            # system; give it the deterministic order modelreg uses.
            for f in source.files:
                flags = lt.file_storage.flag_executable if f.executable else 0
                fs.add_file("/".join((source.name, *f.path)), f.size, flags)
        else:
            lt.add_files(fs, str(path))
        ct = lt.create_torrent(fs, piece_length or 0, MODES[mode])
    for tier, url in enumerate(trackers):
        ct.add_tracker(url, tier)
    for url in webseeds:
        ct.add_url_seed(url)
    ct.set_creator(f"modelreg {__version__}")
    lt.set_piece_hashes(ct, str(path.parent))
    metainfo = bencodepy.decode(lt.bencode(ct.generate()))
    del metainfo[b"creation date"]
    return bencodepy.encode(metainfo)


def infohashes(data: bytes) -> tuple[str | None, str | None]:
    """The v1 and v2 infohashes as libtorrent reads them."""
    hashes = lt.torrent_info(lt.bdecode(data)).info_hashes()
    return (str(hashes.v1) if hashes.has_v1() else None, str(hashes.v2) if hashes.has_v2() else None)


@pytest.mark.parametrize("mode", ["hybrid", "v1", "v2"])
@pytest.mark.parametrize("shape", [*SHAPES, "single-file"])
def test_same_bytes_as_libtorrent(shapes: dict[str, Path], shape: str, mode: str) -> None:
    path = shapes[shape]
    piece_length = SHAPES[shape][0] if shape in SHAPES else 16 * KIB
    source = LocalSource.open(path)
    ours = create_torrent(source, piece_length=piece_length, mode=mode, webseeds=[WEBSEED])
    theirs = libtorrent_bytes(path, piece_length, mode, source)
    mine, ref = infohashes(ours), infohashes(theirs)
    assert mine == ref
    assert (mine[0] is not None, mine[1] is not None) == (mode != "v2", mode != "v1")
    assert ours == theirs


def test_trackers_and_several_webseeds_match_libtorrent(shapes: dict[str, Path]) -> None:
    path = shapes["nested-and-executable"]
    source = LocalSource.open(path)
    trackers = ("udp://127.0.0.1:6969/announce", "http://127.0.0.1:6970/announce")
    seeds = (WEBSEED, "http://127.0.0.1:8081/mirror/")
    ours = create_torrent(source, piece_length=32 * KIB, trackers=trackers, webseeds=seeds)
    assert ours == libtorrent_bytes(path, 32 * KIB, "hybrid", source, trackers, seeds)
    torrent = Torrent.from_bytes(ours)
    assert torrent.trackers == trackers and torrent.webseeds == seeds


def test_no_creation_date_so_same_input_gives_same_bytes(shapes: dict[str, Path]) -> None:
    source = LocalSource.open(shapes["empty-files"])
    first = create_torrent(source, comment="hello")
    assert first == create_torrent(source, comment="hello")
    metainfo = bencodepy.decode(first)
    assert b"creation date" not in metainfo
    assert metainfo[b"comment"] == b"hello"
    assert metainfo[b"created by"] == f"modelreg {__version__}".encode()


@pytest.mark.parametrize(
    "total, expected",
    [(1, 16 * KIB), (2_684_355, 16 * KIB), (2_684_356, 32 * KIB), (2_748_779_070, MIB),
     (55_717_134_336, 4 * MIB), (703_687_441_777, 8 * MIB), (10**13, 16 * MIB)],
)
def test_default_piece_length_follows_libtorrent(total: int, expected: int) -> None:
    assert default_piece_length(total) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = lt.file_storage()
        fs.add_file("x", total)
        assert lt.create_torrent(fs, 0).piece_length() == expected


def test_name_override_renames_the_torrent(shapes: dict[str, Path]) -> None:
    torrent = Torrent.from_bytes(create_torrent(LocalSource.open(shapes["single-file"]), name="renamed.gguf"))
    assert torrent.name == "renamed.gguf" and torrent.files[0].path == ("renamed.gguf",)


class ListSource:
    """An in-memory source that yields each file in chunks of a fixed size."""

    def __init__(self, files: dict[tuple[str, ...], bytes], chunk: int, sha256: dict | None = None,
                 fail_after: int | None = None) -> None:
        self.name = "Mem"
        self.single_file = False
        self.data = files
        self.chunk = chunk
        self.fail_after = fail_after
        self.files = [SourceFile(p, len(d), sha256=(sha256 or {}).get(p)) for p, d in files.items()]

    def chunks(self, file: SourceFile):
        data = self.data[file.path]
        for n, i in enumerate(range(0, len(data), self.chunk)):
            if self.fail_after is not None and n >= self.fail_after:
                raise CreateError(f"{file.path_str}: connection lost")
            yield data[i : i + self.chunk]


def test_chunk_size_does_not_change_the_torrent() -> None:
    rng = random.Random(3)
    files = {("a",): rng.randbytes(3 * MIB + 5), ("d", "b"): rng.randbytes(16 * KIB), ("c",): b""}
    sizes = (777, 16 * KIB, 10**6, 3 * MIB // 2, 4 * MIB)  # gathered, passed through, or both
    results = {create_torrent(ListSource(files, chunk), piece_length=16 * KIB) for chunk in sizes}
    assert len(results) == 1


def test_mixed_chunk_sizes_within_a_file() -> None:
    data = random.Random(4).randbytes(5 * MIB + 3)

    class Mixed(ListSource):
        def chunks(self, file: SourceFile):
            view, pos = memoryview(self.data[file.path]), 0
            for size in [10, 2 * MIB, 100, 5000, 3 * MIB]:
                yield view[pos : pos + size]
                pos += size
            yield view[pos:]

    mixed = create_torrent(Mixed({("w",): data, ("x",): b"1"}, 0), piece_length=64 * KIB)
    assert mixed == create_torrent(ListSource({("w",): data, ("x",): b"1"}, MIB), piece_length=64 * KIB)


def test_expected_sha256_is_checked_while_streaming() -> None:
    data = {("model.bin",): b"x" * 50_000, ("ok.json",): b"{}"}
    good = {p: hashlib.sha256(d).hexdigest() for p, d in data.items()}
    create_torrent(ListSource(data, 4096, sha256=good))
    bad = dict(good)
    bad[("model.bin",)] = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(CreateError, match="model.bin"):
        create_torrent(ListSource(data, 4096, sha256=bad))


@pytest.mark.parametrize("announced, message", [(6, "got 5 of its announced 6 bytes"),
                                                 (3, "longer than its announced 3 bytes")])
def test_source_shorter_or_longer_than_announced_is_an_error(announced: int, message: str) -> None:
    source = ListSource({("a",): b"12345"}, chunk=2)
    source.files = [SourceFile(("a",), announced)]
    with pytest.raises(CreateError, match=message):
        create_torrent(source)


@pytest.mark.parametrize(
    "files, message",
    [({}, "no files"), ({("a",): b""}, "all files are empty"),
     ({("a",): b"1", ("a", "b"): b"2"}, "both a file and a folder"), ({("..",): b"1"}, "invalid file path")],
)
def test_bad_sources_are_refused(files: dict, message: str) -> None:
    with pytest.raises(CreateError, match=message):
        create_torrent(ListSource(files, 10))


@pytest.mark.parametrize("mode, piece_length", [("hybrid", 8 * KIB), ("v2", 48 * KIB), ("v1", 1000)])
def test_invalid_piece_length_is_refused(mode: str, piece_length: int) -> None:
    with pytest.raises(CreateError, match="piece length"):
        plan_layout(ListSource({("a",): b"1"}, 1), piece_length=piece_length, mode=mode)


def test_interrupted_create_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "Model"
    write(folder / "a.bin", 3 * MIB, seed=1)
    write(folder / "b.bin", 3 * MIB, seed=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    real_chunks = LocalSource.chunks

    def failing_chunks(self, file):
        for _i, chunk in enumerate(real_chunks(self, file)):
            if file.path == ("b.bin",):
                raise CreateError(f"{file.path_str}: disk went away")
            yield chunk

    monkeypatch.setattr(LocalSource, "chunks", failing_chunks)
    assert main(["create", str(folder), "-o", str(out_dir / "Model.torrent"), "-q"]) == 1
    assert list(out_dir.iterdir()) == []


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.torrent"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CreateError, match="No space left"):
        write_torrent(b"new", target)
    assert [p.name for p in tmp_path.iterdir()] == ["x.torrent"]
    assert target.read_bytes() == b"old"


def test_create_command_writes_the_torrent(tmp_path: Path, shapes: dict[str, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "model.torrent"
    path = shapes["nested-and-executable"]
    rc = main(["create", str(path), "-o", str(out), "--piece-length", "32K", "--webseed", WEBSEED, "-q"])
    assert rc == 0
    source = LocalSource.open(path)
    v1, v2 = infohashes(libtorrent_bytes(path, 32 * KIB, "hybrid", source))
    assert infohashes(out.read_bytes()) == (v1, v2)
    printed = capsys.readouterr().out
    assert f"infohash v1 {v1}" in printed and f"infohash v2 {v2}" in printed


@pytest.mark.parametrize("flag, has_v1, has_v2", [("--v1-only", True, False), ("--v2-only", False, True)])
def test_create_command_modes(tmp_path: Path, shapes: dict[str, Path], flag: str, has_v1: bool, has_v2: bool) -> None:
    out = tmp_path / "m.torrent"
    assert main(["create", str(shapes["empty-files"]), "-o", str(out), flag, "-q"]) == 0
    torrent = Torrent.read(out)
    assert (torrent.infohash_v1 is not None, torrent.infohash_v2 is not None) == (has_v1, has_v2)


def test_create_command_rejects_a_bad_piece_length(tmp_path: Path, shapes: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", str(shapes["empty-files"]), "-o", str(tmp_path / "x.torrent"),
                 "--piece-length", "20K"]) == 1
    assert "power of two" in capsys.readouterr().err
    assert main(["create", str(tmp_path / "nope")]) == 1


def test_local_source_follows_links_and_refuses_loops(tmp_path: Path) -> None:
    folder = tmp_path / "Model"
    write(folder / "blobs" / "abc", 1000, seed=1)
    (folder / "model.bin").symlink_to(folder / "blobs" / "abc")
    (folder / "dangling").symlink_to(folder / "nowhere")
    source = LocalSource.open(folder)
    assert [(f.path, f.size) for f in source.files] == [(("blobs", "abc"), 1000), (("model.bin",), 1000)]
    (folder / "blobs" / "loop").symlink_to(folder)
    with pytest.raises(CreateError, match="loops back"):
        LocalSource.open(folder)


def test_local_source_refuses_names_that_are_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "Model"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"1")
    os.close(os.open(os.path.join(os.fsencode(folder), b"bad-\xff"), os.O_CREAT | os.O_WRONLY))
    with pytest.raises(CreateError, match="not valid UTF-8"):
        LocalSource.open(folder)


def test_layout_and_metainfo_rebuild_every_corpus_torrent(corpus_dir: Path) -> None:
    """From each real torrent's file list and hashes, modelreg rebuilds the very same bytes.

    The corpus was made by libtorrent 2.0 from Hugging Face repositories: this checks file order, pad
    files, default piece length, the file tree and which files get piece layers on 49 real models.
    """
    from modelreg.torrent.create import build_metainfo
    from modelreg.torrent.engine import StreamHashes
    from modelreg.torrent.hashing import FileHashes

    paths = sorted(corpus_dir.rglob("*.torrent"))
    assert len(paths) == 49
    for path in paths:
        raw = path.read_bytes()
        metainfo = bencodepy.decode(raw)
        info = metainfo[b"info"]
        real = [f for f in info[b"files"] if f.get(b"attr") != b"p"]
        source = ListSource({}, 1)
        source.name = info[b"name"].decode()
        # Reversed: the order must come from modelreg's sorting, not from the torrent.
        source.files = [SourceFile(tuple(p.decode() for p in f[b"path"]), f[b"length"]) for f in reversed(real)]
        assert default_piece_length(sum(f.size for f in source.files)) == info[b"piece length"], path
        layout = plan_layout(source, mode="hybrid")
        files = {}
        for index, entry in enumerate(layout.entries):
            if entry.is_pad:
                continue
            node = info[b"file tree"]
            for part in entry.path:
                node = node[part.encode()]
            root = node[b""].get(b"pieces root")
            files[index] = FileHashes(entry.size, root, metainfo.get(b"piece layers", {}).get(root, root or b""))
        rebuilt = build_metainfo(layout, StreamHashes(info[b"pieces"], files),
                                 webseeds=[metainfo[b"url-list"].decode()], created_by=None)
        assert bencodepy.encode(rebuilt) == raw, path
