"""A synthetic registry of many valid hybrid torrents, shaped like the real corpus, for the site benchmark.

Each torrent takes the file list of a corpus torrent (paths kept, sizes scaled by a random factor), a new
``Org/Name``, a gateway web seed with a made-up revision and a creation date, and is laid out as a hybrid
v1+v2 torrent with BEP 47 pad files. Piece hashes are random bytes (the torrents are valid bencode and
pass modelreg's checks, but describe no real data), and the piece length is chosen for about 128 pieces,
so 10,000 torrents take ~100 MB instead of the real corpus's ~5 GB.

    python bench/synth.py OUT_DIR [--count 10000] [--corpus PATH] [--seed 1]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelreg.registry.catalog import load_catalog  # noqa: E402
from modelreg.torrent import bencode as bencoding  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "modelregistry"
_ORG_WORDS = ("open deep meta mist nova qwen gemma star blue cedar tensor quant neural lumen atlas orbit "
              "sigma delta forge pixel vector coral amber").split()
_NAME_WORDS = ("chat coder instruct base vision audio tiny mini large ultra turbo reason agent math "
               "embed rerank ocr tts lora distill").split()
_TARGET_PIECES = 128
_MAX_PIECE_LENGTH = 64 << 20
_BLOCK = 16384


def _pad_hash(piece_length: int) -> bytes:
    """Merkle root of a piece made only of padding blocks (BEP 52: zero leaves)."""
    h = bytes(32)
    for _ in range(int(math.log2(piece_length // _BLOCK))):
        h = hashlib.sha256(h + h).digest()
    return h


def _pieces_root(layer: bytes, piece_length: int) -> bytes:
    """The root of a piece layer, so that libtorrent accepts the (random) layer as consistent."""
    nodes = [layer[i : i + 32] for i in range(0, len(layer), 32)]
    nodes += [_pad_hash(piece_length)] * ((1 << math.ceil(math.log2(len(nodes)))) - len(nodes))
    while len(nodes) > 1:
        nodes = [hashlib.sha256(nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
    return nodes[0]


def shapes(corpus: Path) -> list[tuple[str, list[tuple[tuple[str, ...], int]]]]:
    """(name, [(path, size)]) of every corpus torrent."""
    catalog = load_catalog(corpus)
    return [(m.torrent.name, [(f.path, f.size) for f in m.torrent.files]) for m in catalog.models]


def hybrid_torrent(name: str, files: list[tuple[tuple[str, ...], int]], webseed: str, created: int,
                   rng: random.Random) -> bytes:
    """Bencoded hybrid torrent with pad files, random piece hashes and the given files (sorted)."""
    files = sorted(files, key=lambda f: [p.encode() for p in f[0]])
    total = sum(size for _, size in files)
    piece_length = 1 << max(0, math.ceil(math.log2(max(1, total / _TARGET_PIECES))))
    piece_length = min(_MAX_PIECE_LENGTH, max(_BLOCK, piece_length))
    v1_files, tree, layers, offset = [], {}, {}, 0
    for i, (path, size) in enumerate(files):
        v1_files.append({b"length": size, b"path": [p.encode() for p in path]})
        node = tree
        for part in path:
            node = node.setdefault(part.encode(), {})
        leaf = {b"length": size}
        if size > piece_length:
            layer = rng.randbytes(32 * math.ceil(size / piece_length))
            leaf[b"pieces root"] = root = _pieces_root(layer, piece_length)
            layers[root] = layer
        elif size:
            leaf[b"pieces root"] = rng.randbytes(32)
        node[b""] = leaf
        offset += size
        gap = -offset % piece_length
        if gap and i < len(files) - 1:
            v1_files.append({b"attr": b"p", b"length": gap, b"path": [b".pad", str(gap).encode()]})
            offset += gap
    info = {
        b"name": name.encode(),
        b"piece length": piece_length,
        b"meta version": 2,
        b"file tree": tree,
        b"files": v1_files,
        b"pieces": rng.randbytes(20 * math.ceil(offset / piece_length)),
    }
    top = {
        b"info": info,
        b"piece layers": layers,
        b"url-list": [webseed.encode()],
        b"creation date": created,
        b"created by": b"modelreg bench/synth.py",
    }
    return bencoding.encode(top)


def generate(out: Path, count: int, corpus: Path = CORPUS, seed: int = 1) -> list[Path]:
    """Write ``count`` torrents into ``out/<org>/<name>/<Name>.torrent``; return their paths."""
    rng = random.Random(seed)
    base = shapes(corpus)
    orgs = [f"{a.capitalize()}{b}-{k}" for k in range(4) for a in _ORG_WORDS for b in _ORG_WORDS]
    rng.shuffle(orgs)
    weights = list(itertools.accumulate(1 / (k + 1) ** 0.9 for k in range(len(orgs))))  # big orgs, long tail
    paths = []
    for i in range(count):
        shape_name, files = base[i % len(base)]
        org = rng.choices(orgs, cum_weights=weights)[0]
        name = f"{shape_name}-{rng.choice(_NAME_WORDS)}-{i}"
        scale = rng.uniform(0.05, 3.0)
        sized = [(p, int(s * scale)) for p, s in files]
        revision = hashlib.sha1(f"{seed}/{i}".encode()).hexdigest()
        webseed = f"https://seed.example.org/v1/{org}/{name}/{revision}/"
        created = 1_700_000_000 + rng.randrange(0, 60_000_000)
        data = hybrid_torrent(name, sized, webseed, created, rng)
        path = out / org / name / f"{name}.torrent"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not (args.corpus / "expected.json").is_file():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    paths = generate(args.out, args.count, args.corpus, args.seed)
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} torrents, {size / 1e6:.1f} MB, in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
