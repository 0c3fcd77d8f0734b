"""A synthetic registry of many valid hybrid torrents, shaped like the real corpus, for the site benchmark.

Each torrent takes the file list of a corpus torrent (paths kept, sizes scaled by a random factor), a new
``Org/Name``, a gateway web seed with a made-up revision and a creation date, and is laid out as a hybrid
v1+v2 torrent with BEP 47 pad files. Piece hashes are random bytes (the torrents are valid bencode and
pass modelreg's checks, but describe no real data), and the piece length is chosen for about 128 pieces,
so 10,000 torrents take ~100 MB instead of the real corpus's ~5 GB.

Without the corpus (``--corpus none``, or where it is missing) a few built-in shapes stand in for it, so
tests can make registries of any size anywhere. :func:`synthetic_meta` makes up Hugging Face metadata
(license, task, tags, downloads) for the models of such a registry, deterministically.

    python bench/synth.py OUT_DIR [--count 10000] [--corpus PATH|none] [--seed 1]
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

from modelreg.hf.metadata import ModelMeta  # noqa: E402
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


_GB = 10**9
#: Shapes of common repositories: (name, [(path, size)]), used where the corpus is not available.
BUILTIN_SHAPES = [
    ("Qwen3.8-27B", [(("config.json",), 1500), (("model-00001-of-00002.safetensors",), 9 * _GB),
                     (("model-00002-of-00002.safetensors",), 5 * _GB), (("tokenizer.json",), 7_000_000)]),
    ("Llama-4-8B-Instruct-GGUF", [(("llama-4-8b-instruct-Q4_K_M.gguf",), 5 * _GB),
                                  (("llama-4-8b-instruct-Q8_0.gguf",), 8 * _GB), (("README.md",), 9000)]),
    ("whisper-small-onnx", [(("onnx", "encoder_model.onnx"), 350_000_000),
                            (("onnx", "decoder_model.onnx"), 600_000_000), (("config.json",), 2000)]),
    ("Mistral-9B-AWQ", [(("model.safetensors",), 6 * _GB), (("quant_config.json",), 300)]),
    ("gemma-5-2b-it", [(("model.safetensors",), 5 * _GB), (("pytorch_model.bin",), 5 * _GB)]),
    ("stable-audio-2", [(("unet", "diffusion_pytorch_model.safetensors"), 3 * _GB),
                        (("vae", "diffusion_pytorch_model.safetensors"), 300_000_000)]),
]
_LICENSES = ("apache-2.0", "mit", "llama3", "gemma", "other", None)
_TASKS = ("text-generation", "automatic-speech-recognition", "text-to-image", "feature-extraction", None)


def synthetic_meta(repo_id: str, index: int, seed: int = 1) -> ModelMeta:
    """Made-up metadata for a synthetic model: a license, task and tags that vary, and downloads."""
    rng = random.Random(f"{seed}/{repo_id}")
    return ModelMeta(repo_id=repo_id, license=rng.choice(_LICENSES), pipeline_tag=rng.choice(_TASKS),
                     tags=(f"tag{index % 7}", rng.choice(("chat", "code", "vision", "speech"))),
                     downloads=rng.randrange(0, 10**6))


def shapes(corpus: Path | None) -> list[tuple[str, list[tuple[tuple[str, ...], int]]]]:
    """(name, [(path, size)]) of every corpus torrent, or the built-in shapes without a corpus."""
    if corpus is None or not (corpus / "expected.json").is_file():
        return BUILTIN_SHAPES
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


def generate(out: Path, count: int, corpus: Path | None = CORPUS, seed: int = 1) -> list[Path]:
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
    parser.add_argument("--corpus", default=str(CORPUS), help="corpus folder, or 'none' for built-in shapes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    corpus = None if args.corpus == "none" else Path(args.corpus)
    if corpus is not None and not (corpus / "expected.json").is_file():
        print(f"corpus not found at {corpus} (--corpus none uses built-in shapes)", file=sys.stderr)
        return 1
    start = time.perf_counter()
    paths = generate(args.out, args.count, corpus, args.seed)
    size = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} torrents, {size / 1e6:.1f} MB, in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
