"""The bundled example registry: small made-up models, generated deterministically, so the site builds
on a fresh machine with no network.

``python scripts/examples.py`` rewrites ``registry/modelreg-examples/`` (torrents and sidecars). The
models do not exist on Hugging Face: they are labelled examples (``"example": true`` in each sidecar).
The same definitions serve the tests' fake hub, which is how their cached metadata was made.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORG = "modelreg-examples"
SEED_PREFIX = "https://seed.example.org/v1/"


def _bytes(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def safetensors(seed: str, tensors: dict[str, list[int]], dtype: str = "F16") -> bytes:
    """A valid safetensors file with random weights of the given shapes."""
    width = {"F16": 2, "BF16": 2, "F32": 4}[dtype]
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors.items():
        n = width
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + _bytes(seed, offset)


def parameters(tensors: dict[str, list[int]]) -> int:
    total = 0
    for shape in tensors.values():
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


@dataclass
class Example:
    """One made-up model repository: its files and the metadata its (fake) Hugging Face page has."""

    name: str
    files: dict[str, bytes]
    card: str
    meta: dict = field(default_factory=dict)
    single_file: bool = False

    @property
    def repo_id(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def revision(self) -> str:
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + hashlib.sha256(self.files[path]).digest())
        return digest.hexdigest()


def _card(title: str, body: str, meta: dict) -> str:
    front = "\n".join(f"{k}: {v}" for k, v in meta.items())
    return f"---\n{front}\n---\n\n# {title}\n\n> An example model bundled with modelreg: it does not exist on Hugging Face.\n\n{body}\n"


LLAMA = {"model.embed_tokens.weight": [512, 256], "model.layers.0.mlp.up_proj.weight": [1024, 256],
         "model.layers.0.mlp.down_proj.weight": [256, 1024], "lm_head.weight": [512, 256]}
WHISPER = {"encoder.conv1.weight": [384, 80, 3], "decoder.embed_tokens.weight": [1000, 384]}
EMBED = {"embeddings.word_embeddings.weight": [2000, 128], "pooler.dense.weight": [128, 128]}

EXAMPLES = [
    Example(
        "tiny-llama-demo",
        {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 256,
                                       "num_hidden_layers": 1, "vocab_size": 512}, indent=2).encode(),
            "generation_config.json": b'{"max_new_tokens": 64}\n',
            "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {
                f"tok{i}": i for i in range(512)}}}).encode(),
            "model.safetensors": safetensors("tiny-llama", LLAMA),
        },
        _card("Tiny Llama demo", "A one-layer Llama-shaped model with random weights, for trying the registry.\n\n"
              "```python\nfrom transformers import AutoModelForCausalLM\n```",
              {"license": "apache-2.0", "pipeline_tag": "text-generation", "library_name": "transformers"}),
        {"license": "apache-2.0", "pipeline_tag": "text-generation", "library_name": "transformers",
         "tags": ["llama", "text-generation", "example"], "downloads": 1234, "likes": 56,
         "trending_score": 12, "parameters": parameters(LLAMA), "created_at": "2026-09-01T10:00:00.000Z",
         "last_modified": "2026-11-02T08:30:00.000Z"},
    ),
    Example(
        "tiny-demo-GGUF",
        {"tiny-demo.Q4_K_M.gguf": b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + _bytes("gguf", 700_000)},
        _card("Tiny demo GGUF", "A single-file GGUF quantisation, for llama.cpp and friends.",
              {"license": "mit", "pipeline_tag": "text-generation"}),
        {"license": "mit", "pipeline_tag": "text-generation", "library_name": "gguf",
         "tags": ["gguf", "llama.cpp", "example"], "downloads": 310, "likes": 9, "trending_score": 3,
         "created_at": "2026-10-15T12:00:00.000Z", "last_modified": "2026-10-20T09:00:00.000Z"},
        single_file=True,
    ),
    Example(
        "tiny-whisper-demo",
        {
            "config.json": b'{"architectures": ["WhisperForConditionalGeneration"], "d_model": 384}\n',
            "model.safetensors": safetensors("whisper", WHISPER),
            "onnx/encoder_model.onnx": _bytes("onnx-enc", 300_000),
            "onnx/decoder_model.onnx": _bytes("onnx-dec", 200_000),
            "preprocessor_config.json": b'{"feature_size": 80, "sampling_rate": 16000}\n',
        },
        _card("Tiny Whisper demo", "Speech recognition shaped like Whisper, with ONNX exports.",
              {"license": "mit", "pipeline_tag": "automatic-speech-recognition"}),
        {"license": "mit", "pipeline_tag": "automatic-speech-recognition", "library_name": "transformers",
         "tags": ["whisper", "audio", "onnx", "example"], "downloads": 87, "likes": 4, "trending_score": 1,
         "parameters": parameters(WHISPER), "created_at": "2026-08-03T07:00:00.000Z",
         "last_modified": "2026-08-03T07:00:00.000Z"},
    ),
    Example(
        "tiny-embedder-demo",
        {
            "config.json": b'{"architectures": ["BertModel"], "hidden_size": 128}\n',
            "model.safetensors": safetensors("embed", EMBED, "F32"),
            "pytorch_model.bin": _bytes("embed-bin", 400_000),
            "1_Pooling/config.json": b'{"word_embedding_dimension": 128, "pooling_mode_mean_tokens": true}\n',
            "modules.json": b'[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]\n',
        },
        _card("Tiny embedder demo", "Sentence embeddings in the sentence-transformers layout.",
              {"license": "cc-by-4.0", "pipeline_tag": "sentence-similarity"}),
        {"license": "cc-by-4.0", "pipeline_tag": "sentence-similarity", "library_name": "sentence-transformers",
         "tags": ["sentence-transformers", "feature-extraction", "example"], "downloads": 4500, "likes": 120,
         "trending_score": 30, "parameters": parameters(EMBED), "created_at": "2026-06-11T16:00:00.000Z",
         "last_modified": "2026-11-20T16:00:00.000Z"},
    ),
]
for _ex in EXAMPLES:
    _ex.files.setdefault("README.md", _ex.card.encode())


def write_files(example: Example, folder: Path) -> Path:
    """Write an example's files under ``folder``; return the file (single-file) or folder to hash."""
    root = folder / example.name
    for rel, data in example.files.items():
        if example.single_file and rel == "README.md":
            continue  # a single-file torrent carries only the weights; the card stays on the hub
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if example.single_file:
        (weights,) = [p for p in root.iterdir()]
        return weights
    return root


def write_registry(out: Path) -> list[Path]:
    """Create each example's torrent and sidecar under ``out``; return the torrents written."""
    from modelreg.torrent.create import create_torrent, write_torrent
    from modelreg.torrent.source import LocalSource

    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for ex in EXAMPLES:
            target = write_files(ex, Path(tmp))
            data = create_torrent(LocalSource.open(target), webseeds=[f"{SEED_PREFIX}{ex.repo_id}/{ex.revision}/"],
                                  comment=f"modelreg example: {ex.repo_id} (not a real Hugging Face model)",
                                  created_by="modelreg")  # no version: a release must not change these bytes
            dest = out / ex.name / f"{target.name}.torrent"
            write_torrent(data, dest)
            sidecar = {"repo_id": ex.repo_id, "revision": ex.revision, "example": True}
            dest.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
            written.append(dest)
    return written


def main() -> int:
    sys.path.insert(0, str(ROOT))
    for path in write_registry(ROOT / "registry" / ORG):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
