"""Which weight formats a model ships, told from its file names."""

from __future__ import annotations

from typing import Iterable

# (format, test on the lower-cased path). Order is the display order.
_RULES: list[tuple[str, object]] = [
    ("safetensors", lambda p: p.endswith(".safetensors")),
    ("GGUF", lambda p: p.endswith(".gguf")),
    ("MLX", lambda p: "mlx" in p and (p.endswith(".safetensors") or p.endswith(".npz"))),
    ("ONNX", lambda p: p.endswith(".onnx") or p.endswith(".onnx_data") or p.endswith(".onnx.data")),
    ("PyTorch", lambda p: p.endswith((".bin", ".pt", ".pth", ".ckpt")) and "tokenizer" not in p),
    ("TensorFlow", lambda p: p.endswith(".h5") or p.endswith("saved_model.pb")),
    ("Flax", lambda p: p.endswith(".msgpack")),
    ("OpenVINO", lambda p: p.endswith("openvino_model.xml")),
    ("Core ML", lambda p: ".mlmodel" in p or ".mlpackage" in p),
    ("TensorRT", lambda p: p.endswith((".engine", ".plan"))),
]


def detect_formats(paths: Iterable[str]) -> list[str]:
    """The formats found among ``paths``, in a fixed order, each once."""
    lowered = [p.lower() for p in paths]
    return [name for name, test in _RULES if any(test(p) for p in lowered)]  # type: ignore[operator]
