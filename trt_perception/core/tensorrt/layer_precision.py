"""Per-layer precision of a TensorRT build: which ONNX nodes are pinned to FP32 or FP16.

A *layer precision file* (JSON, written by ``build-engine --fp16-check`` and ``quantize
--target-recall``) names ONNX nodes and the precision each must run in::

    {"format": 1, "model": "ssdlite.mixed.onnx",
     "layers": {"BoxPredictor_0/ClassPredictor/BiasAdd": {"precision": "fp16", "reason": "..."}}}

TensorRT's ONNX parser names the layers it creates for a node after the node: the first one
exactly, further ones ``<node>_<n>``. :func:`assign_layers` maps a network's layer names onto
the requested nodes that way and reports requested nodes with no layer (renamed or fused
away). The builder then sets each matched layer's precision and output types and the
``OBEY_PRECISION_CONSTRAINTS`` flag (:mod:`trt_perception.core.tensorrt.builder`). The choices are
part of the engine cache key (:class:`~trt_perception.core.tensorrt.options.BuildOptions`
``layer_precisions``), so another choice builds another engine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from trt_perception.core.io.atomic_write import atomic_write_text

LAYER_PRECISIONS = ("fp32", "fp16")
FORMAT = 1
PathLike = Union[str, Path]


class LayerPrecisionError(ValueError):
    """A layer precision file or choice that cannot be used, with the reason."""


def check_layer_precisions(layers: Mapping[str, str]) -> None:
    """Raise :class:`LayerPrecisionError` unless every name is a non-empty string and every
    precision one of :data:`LAYER_PRECISIONS`.
    """
    bad = {name: p for name, p in layers.items() if not (isinstance(name, str) and name) or p not in LAYER_PRECISIONS}
    if bad:
        raise LayerPrecisionError(f"layer precisions must be {LAYER_PRECISIONS} for named layers, got {bad}")


def as_key(layers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The choices as a sorted tuple of ``(node, precision)`` (hashable, canonical)."""
    check_layer_precisions(layers)
    return tuple(sorted(layers.items()))


def write_layer_precisions(path: PathLike, model: str, layers: Mapping[str, str],
                           reasons: Mapping[str, str]) -> None:
    """Write a layer precision file atomically (``reasons``: node -> why, may be partial)."""
    check_layer_precisions(layers)
    data = {"format": FORMAT, "model": model,
            "layers": {name: {"precision": p, "reason": reasons.get(name, "")} for name, p in layers.items()}}
    atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")


def read_layer_precisions(path: PathLike) -> dict[str, str]:
    """Node -> precision from a layer precision file; :class:`LayerPrecisionError` if unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        layers = {name: entry["precision"] for name, entry in data["layers"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LayerPrecisionError(f"cannot read layer precision file {path}: {exc}") from exc
    check_layer_precisions(layers)
    return layers


def assign_layers(layer_names: Sequence[str], requested: Mapping[str, str]) -> tuple[dict[int, str], list[str]]:
    """Network layer index -> precision for every layer created from a requested ONNX node
    (named ``node`` or ``node_<n>``), and the requested nodes no layer was found for.
    """
    assigned: dict[int, str] = {}
    found: set[str] = set()
    for index, name in enumerate(layer_names):
        node = name if name in requested else re.sub(r"_\d+$", "", name)
        if node in requested:
            assigned[index] = requested[node]
            found.add(node)
    return assigned, [node for node in requested if node not in found]


def describe(layers: Mapping[str, Any]) -> str:
    """``3 layers in FP32, 1 in FP16`` style summary."""
    counts = {p: sum(1 for v in layers.values() if v == p) for p in LAYER_PRECISIONS}
    return ", ".join(f"{n} layer(s) pinned to {p.upper()}" for p, n in counts.items() if n) or "no pinned layers"
