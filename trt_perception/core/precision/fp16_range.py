"""FP16 range check: which intermediate tensors of an FP32 ONNX model leave FP16's range.

FP16's largest finite value is 65504; an activation beyond it becomes ``inf`` in an FP16 engine
(and NaN after the next subtraction), where FP32 is fine. The check runs the FP32 model in ONNX
Runtime (graph optimizations off, so every ONNX node's output is what the graph says) with
*every* float node output exposed as a graph output, over calibration frames, and records each
tensor's largest ``|value|``. A tensor at or above 65504 *overflows*; one at or above
``near_fraction * 65504`` (default 0.25: two bits of headroom) is *near*.

Layers to keep in FP32 (:meth:`Fp16RangeReport.fp32_layers`): the ONNX node producing a flagged
tensor and the nodes consuming it (a consumer running in FP16 would convert its input to FP16
and overflow there). In a TensorRT build these become per-layer precision constraints
(:mod:`.layer_precision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from trt_perception.core.precision.result_cache import ResultCache, tensors_digest

FP16_MAX = 65504.0
DEFAULT_NEAR_FRACTION = 0.25
PathLike = Union[str, Path]


@dataclass(frozen=True)
class TensorRange:
    """Largest ``|value|`` of one tensor over the frames, and the node that produces it
    (``producer`` empty for a graph input).
    """

    tensor: str
    producer: str
    op_type: str
    max_abs: float


@dataclass(frozen=True)
class Fp16RangeReport:
    """Every measured tensor's range, and the consumers of each tensor (by node name)."""

    ranges: tuple[TensorRange, ...]
    consumers: dict[str, tuple[str, ...]]
    frames: int
    near_fraction: float = DEFAULT_NEAR_FRACTION

    @property
    def overflow(self) -> list[TensorRange]:
        """Tensors at or beyond FP16's largest value (or non-finite), largest first."""
        return sorted((r for r in self.ranges if not r.max_abs < FP16_MAX), key=lambda r: -r.max_abs)

    @property
    def near(self) -> list[TensorRange]:
        """Tensors within ``near_fraction`` of FP16's limit but below it, largest first."""
        limit = self.near_fraction * FP16_MAX
        return sorted((r for r in self.ranges if limit <= r.max_abs < FP16_MAX), key=lambda r: -r.max_abs)

    def fp32_layers(self, include_near: bool = True) -> dict[str, str]:
        """ONNX node name -> why it must stay FP32, for every overflowing (and near) tensor's
        producer and consumers, in graph order of the report.
        """
        flagged = self.overflow + (self.near if include_near else [])
        layers: dict[str, str] = {}
        for r in flagged:
            what = "overflows FP16" if r in self.overflow else "is near FP16's limit"
            if r.producer:
                layers.setdefault(r.producer, f"produces {r.tensor} (max |x| {r.max_abs:.4g}, {what})")
            for consumer in self.consumers.get(r.tensor, ()):
                layers.setdefault(consumer, f"reads {r.tensor} (max |x| {r.max_abs:.4g}, {what})")
        return layers

    def headroom(self) -> float:
        """FP16 max / the largest measured ``|value|`` (> 1: every tensor fits)."""
        peak = max((r.max_abs for r in self.ranges), default=0.0)
        return FP16_MAX / peak if peak > 0 else float("inf")

    def format(self, top: int = 5) -> str:
        """A few lines: verdict, flagged tensors with their layers, the largest ranges."""
        lines = [f"FP16 range check over {self.frames} frames, {len(self.ranges)} tensors: largest |x| "
                 f"{max((r.max_abs for r in self.ranges), default=0.0):.4g} (FP16 max 65504, headroom "
                 f"x{self.headroom():.3g})"]
        for label, rows in (("OVERFLOW", self.overflow), ("near", self.near)):
            for r in rows:
                lines.append(f"  {label}: {r.tensor} max |x| {r.max_abs:.4g}, produced by {r.producer or 'input'} "
                             f"({r.op_type or '-'})")
        if not self.overflow and not self.near:
            lines.append(f"  no tensor reaches {self.near_fraction:g} x 65504; largest:")
            for r in sorted(self.ranges, key=lambda r: -r.max_abs)[:top]:
                lines.append(f"    {r.tensor}: {r.max_abs:.4g} ({r.producer}, {r.op_type})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready mapping (overflowing and near-limit tensors, the FP32 layers)."""
        return {"frames": self.frames, "near_fraction": self.near_fraction, "fp16_max": FP16_MAX,
                "headroom": self.headroom(),
                "overflow": [r.__dict__ for r in self.overflow], "near": [r.__dict__ for r in self.near],
                "fp32_layers": self.fp32_layers(),
                "ranges": [r.__dict__ for r in sorted(self.ranges, key=lambda r: -r.max_abs)]}


def _float_node_outputs(model: Any) -> dict[str, Any]:
    """Name -> value info of every float node output whose type shape inference knows."""
    import onnx
    from onnx import TensorProto
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}
    wanted = {}
    for node in model.graph.node:
        for name in node.output:
            info = infos.get(name)
            if name and info is not None and info.type.tensor_type.elem_type in floats:
                wanted[name] = info
    return wanted


def measure_ranges(model_path: PathLike, input_name: str, tensors: Sequence[np.ndarray], *,
                   cache: Optional[ResultCache] = None, threads: int = 1,
                   progress: Optional[Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]] = None
                   ) -> Fp16RangeReport:
    """Run the model on ``tensors`` (its input ``input_name``) with every float node output
    exposed, and report each tensor's largest ``|value|``. Cached under the model's content and
    the tensors' digest. ``progress`` wraps the frame iteration (e.g. ``tqdm``).
    """
    import onnx
    import onnxruntime

    from trt_perception.core.tensorrt.cache import file_sha256

    model = onnx.load(str(model_path))
    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    recipe = {"model_sha256": file_sha256(model_path), "input": input_name, "frames": tensors_digest(tensors)}
    maxima = cache.get("fp16_ranges", recipe) if cache is not None else None
    if maxima is None:
        exposed = _float_node_outputs(model)
        graph_outputs = {o.name for o in model.graph.output}
        model.graph.output.extend(info for name, info in exposed.items() if name not in graph_outputs)
        names = [o.name for o in model.graph.output]
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        peaks = dict.fromkeys(names, 0.0)
        for tensor in (progress(tensors) if progress is not None else tensors):
            for name, value in zip(names, session.run(names, {input_name: tensor})):
                value = np.asarray(value)
                if value.size and np.issubdtype(value.dtype, np.floating):
                    peak = float(np.max(np.abs(value)))
                    peaks[name] = max(peaks[name], peak if np.isfinite(peak) else float("inf"))
        maxima = peaks
        if cache is not None:
            cache.put("fp16_ranges", recipe, maxima)
    ranges = tuple(TensorRange(name, producers[name].name if name in producers else "",
                               producers[name].op_type if name in producers else "", float(peak))
                   for name, peak in maxima.items())
    return Fp16RangeReport(ranges, {k: tuple(v) for k, v in consumers.items()}, len(tensors))
