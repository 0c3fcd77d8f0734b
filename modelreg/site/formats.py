"""Which weight formats and quantisations a model ships, told from its files, tags and names.

Three kinds of evidence, any one enough:

- **file names and layout**: ``.gguf``, ``.onnx``, ``.mlpackage``... and files that only one format
  writes (``measurement.json`` beside safetensors is ExLlamaV2's; ``quantize_config.json`` GPTQ's);
- **Hugging Face tags and library** (``mlx``, ``gguf``, ``awq``, ``gptq``, ``exl2``, ``coreml``...);
- **names**: the repository id or a file name with the format as a word (``Qwen3-8B-AWQ``,
  ``Llama-3-8B-exl2``, ``model-fp8.safetensors``, ``mlx-community/...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class _Evidence:
    paths: tuple[str, ...]  # lower-cased file paths
    bases: frozenset[str]  # lower-cased base names
    tags: frozenset[str]  # lower-cased tags and the library name
    words: frozenset[str]  # lower-cased words of the repository id and the file names

    def ext(self, *suffixes: str) -> bool:
        return any(p.endswith(suffixes) for p in self.paths)

    def has(self, *parts: str) -> bool:
        return any(part in p for p in self.paths for part in parts)

    def named(self, *words: str) -> bool:
        return any(w in self.words or w in self.tags for w in words)


_WORD = re.compile(r"[a-z0-9]+")


def _safetensors(e: _Evidence) -> bool:
    return e.ext(".safetensors")


# (format, test). Order is the display order: file formats first, then runtimes and quantisations.
_RULES: list[tuple[str, Callable[[_Evidence], bool]]] = [
    ("safetensors", _safetensors),
    ("GGUF", lambda e: e.ext(".gguf") or "gguf" in e.tags),
    ("MLX", lambda e: e.named("mlx") or (e.has("mlx") and (_safetensors(e) or e.ext(".npz")))),
    ("ONNX", lambda e: e.ext(".onnx", ".onnx_data", ".onnx.data") or "onnx" in e.tags),
    ("Core ML", lambda e: e.has(".mlmodel", ".mlpackage") or e.named("coreml")),
    ("OpenVINO", lambda e: e.ext("openvino_model.xml") or "openvino" in e.tags),
    ("PyTorch", lambda e: any(p.endswith((".bin", ".pt", ".pth", ".ckpt")) and "tokenizer" not in p
                              for p in e.paths)),
    ("TensorFlow", lambda e: e.ext(".h5", "saved_model.pb")),
    ("Flax", lambda e: e.ext(".msgpack")),
    ("TensorRT", lambda e: e.ext(".engine", ".plan")),
    ("AWQ", lambda e: e.named("awq")),
    ("GPTQ", lambda e: e.named("gptq") or "quantize_config.json" in e.bases and _safetensors(e)),
    ("EXL2", lambda e: e.named("exl2") or ("measurement.json" in e.bases and _safetensors(e))),
    ("EXL3", lambda e: e.named("exl3")),
    ("FP8", lambda e: e.named("fp8", "float8") or any(w.startswith("fp8") for w in e.words)),
    ("bitsandbytes", lambda e: e.named("bnb", "bitsandbytes")),
]


def detect_formats(paths: Iterable[str], tags: Iterable[str] = (), names: Iterable[str] = (),
                   library: str | None = None) -> list[str]:
    """The formats found, in a fixed order, each once.

    ``paths`` are the model's file paths, ``tags`` its Hugging Face tags, ``names`` more names to read
    words from (the repository id), ``library`` HF's ``library_name``.
    """
    lowered = tuple(p.lower() for p in paths)
    bases = frozenset(p.rsplit("/", 1)[-1] for p in lowered)
    tag_set = frozenset(t.lower() for t in (*tags, *([library] if library else [])))
    words = frozenset(w for text in (*lowered, *(n.lower() for n in names)) for w in _WORD.findall(text))
    evidence = _Evidence(lowered, bases, tag_set, words)
    return [name for name, test in _RULES if test(evidence)]
