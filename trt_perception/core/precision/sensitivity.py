"""INT8 sensitivity per layer group, and the smallest set of groups kept in float.

Method (one calibration, many quantizations, ONNX Runtime on the CPU):

1. The model's quantizable nodes (``op_types``, default Conv/Add...) are split into *groups* by
   name (:func:`layer_groups`: the first ``depth`` ``/``-separated parts, e.g. one MobileNetV2
   inverted-residual block ``FeatureExtractor/MobilenetV2/expanded_conv_3``; ``depth=0``: one
   group per node). Activation ranges are calibrated once (cached).
2. *Sensitivity*, one group at a time: a model where only that group is INT8 is compared with
   FP32 on held-out frames (:class:`EvalSet`): detection agreement through the decoder and the
   normalized output error. Groups are ranked by ``1 - F1`` of the detections (F1 of precision and
   recall vs FP32), then by the output error (continuous, separates groups whose detections
   all agree). One-at-a-time isolates each group's own quantization damage and needs one model
   per group; leave-one-out (all but one) would mix in every other group's damage.
3. *Selection*: starting from full INT8, groups are kept in float one by one until the whole
   model meets the :class:`Target`: each step tries the ``candidates`` most sensitive groups not
   yet kept and keeps the one with the best :meth:`Target.margin` (the tighter of recall and
   precision; or the lowest output error), 1 candidate = ranking order; then each kept group is
   dropped again, last kept first, if the target still holds without it (backward elimination),
   and optionally each node of the kept groups is returned to INT8 where the target still holds,
   so the set is minimal in that sense. Every step evaluates the real mixed model, whose float
   nodes read float inputs (:func:`~trt_perception.core.quantize.float_inputs_for_float_nodes`).

Each evaluated variant is cached (:class:`~.result_cache.ResultCache`) under a recipe of the
model's hash, the calibration and evaluation frame digests, the method and the node set, so a
re-run only evaluates what changed.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from trt_perception.core.precision.compare import FrameDecoder, OutputComparison
from trt_perception.core.precision.result_cache import ResultCache, recipe_digest, tensors_digest
from trt_perception.core.quantize import DEFAULT_OP_TYPES, QuantizeReport, quantize_model, weight_rounding_mode

PathLike = Union[str, Path]
DEFAULT_GROUP_DEPTH = 3
DEFAULT_CANDIDATES = 4
SELECT_BY = ("margin", "error")


class SensitivityError(ValueError):
    """A sweep that cannot run (no quantizable nodes, unknown node names), with the reason."""


def layer_groups(model_path: PathLike, op_types: Sequence[str] = DEFAULT_OP_TYPES,
                 depth: int = DEFAULT_GROUP_DEPTH) -> dict[str, tuple[str, ...]]:
    """Group name -> its quantizable node names, both in graph order. A node's group is the
    first ``depth`` ``/``-separated parts of its name (the whole name when it has fewer, or
    when ``depth`` is 0).
    """
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type in op_types:
            if not node.name:
                raise SensitivityError(f"a {node.op_type} node has no name: groups need named nodes")
            parts = node.name.split("/")
            groups.setdefault("/".join(parts[:depth]) if depth > 0 else node.name, []).append(node.name)
    if not groups:
        raise SensitivityError(f"{Path(model_path).name} has no {list(op_types)} nodes to quantize")
    return {name: tuple(nodes) for name, nodes in groups.items()}


def int8_conv_share(model_path: PathLike) -> tuple[int, int]:
    """(Conv nodes whose data input comes from a DequantizeLinear, all Conv nodes) of an ONNX."""
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    dq_outputs = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    return sum(1 for node in convs if node.input[0] in dq_outputs), len(convs)


@dataclass
class EvalSet:
    """Held-out frames: the input tensors (``input_name``), the FP32 reference outputs of each,
    and optionally a decoder of one frame's outputs into detections.
    """

    input_name: str
    tensors: list[np.ndarray]
    reference: list[dict[str, np.ndarray]]
    decode: Optional[FrameDecoder] = None
    iou_threshold: float = 0.5
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.tensors or len(self.tensors) != len(self.reference):
            raise SensitivityError(f"need held-out frames with their reference outputs, got {len(self.tensors)} "
                                   f"frames and {len(self.reference)} reference outputs")
        self.digest = tensors_digest(self.tensors)

    def compare(self, run: Callable[[np.ndarray], Mapping[str, np.ndarray]]) -> dict[str, Any]:
        """Summary (:meth:`OutputComparison.summary`) of ``run``'s outputs against the reference."""
        comparison = OutputComparison(self.iou_threshold)
        for index, tensor in enumerate(self.tensors):
            comparison.add(self.reference[index], run(tensor), self.decode, index)
        return comparison.summary()


def onnx_runner(model_path: PathLike, input_name: str,
                threads: int = 1) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A function running ``model_path`` in ONNX Runtime (CPU, ``threads`` threads) on one input."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda tensor: dict(zip(names, session.run(names, {input_name: tensor})))


@dataclass(frozen=True)
class Target:
    """What the mixed model must reach against FP32: detection recall and precision (models with
    detections), or at most ``output_error`` (normalized output error; any model).
    """

    recall: Optional[float] = 0.99
    precision: Optional[float] = 0.99
    output_error: Optional[float] = None

    def met(self, summary: Mapping[str, Any]) -> bool:
        """Whether ``summary`` (a comparison vs FP32) meets every set target; raises when none is set."""
        d = summary.get("detections")
        checks = []
        if d is not None:
            checks += [self.recall is None or d["recall"] >= self.recall,
                       self.precision is None or d["precision"] >= self.precision]
        if self.output_error is not None:
            checks.append(summary["output_error"] <= self.output_error)
        if not checks:
            raise SensitivityError("the target checks nothing: give an output error target for a model "
                                   "without detections")
        return all(checks)

    def margin(self, summary: Mapping[str, Any]) -> float:
        """How far ``summary`` is above its tightest target (negative: below; larger = better):
        the minimum of recall - target recall, precision - target precision and (relative)
        1 - output error / its target, over the targets set. Selection maximizes it, so a step
        that trades precision for recall does not look better than it is.
        """
        d = summary.get("detections")
        margins = []
        if d is not None:
            margins += [d[key] - limit if not math.isnan(d[key]) else -math.inf
                        for key, limit in (("recall", self.recall), ("precision", self.precision)) if limit is not None]
        if self.output_error is not None:
            margins.append(1.0 - summary["output_error"] / self.output_error if self.output_error > 0
                           else -summary["output_error"])
        if not margins:
            raise SensitivityError("the target checks nothing: give an output error target for a model "
                                   "without detections")
        return min(margins)


def loss(summary: Mapping[str, Any]) -> tuple[float, float]:
    """Ranking key, larger = worse: (1 - F1 of the detections vs FP32 or 0, output error)."""
    d = summary.get("detections")
    f1 = 1.0
    if d is not None:
        p, r = d["precision"], d["recall"]
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return 1.0 - f1, float(summary["output_error"])


@dataclass(frozen=True)
class GroupSensitivity:
    """One group's effect when it alone is INT8: its nodes, convolutions and comparison summary."""

    group: str
    nodes: tuple[str, ...]
    convs: int
    summary: dict[str, Any]

    @property
    def loss(self) -> tuple[float, float]:
        """This step's ranking key (:func:`loss`, larger = worse)."""
        return loss(self.summary)


@dataclass(frozen=True)
class Step:
    """One evaluated mixed model during selection: the groups kept in float and its summary."""

    action: str
    float_groups: tuple[str, ...]
    summary: dict[str, Any]
    met: bool
    float_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """The groups kept in float (ranking order), whether the target was reached, every step."""

    float_groups: tuple[str, ...]
    float_nodes: tuple[str, ...]
    reached: bool
    steps: tuple[Step, ...]

    @property
    def final(self) -> Step:
        """The last step with the chosen float nodes."""
        return next(s for s in reversed(self.steps) if s.float_nodes == self.float_nodes)


class SensitivitySweep:
    """Quantizes ``model_path`` in many ways from one calibration and evaluates each variant on
    ``evalset`` (see the module docstring). ``calibration``: input tensors for the activation
    ranges (read only when the ranges are not cached). ``bias_correction``, ``weight_rounding``
    (a :data:`~trt_perception.core.quantize.WEIGHT_ROUNDINGS` mode, True = ``float``): applied to
    every variant (:func:`~trt_perception.core.quantize.quantize_model`; the rounding is computed
    once per calibration, the asymmetric one on the full INT8 model) and part of the cache key;
    ``centred_inputs`` (:mod:`trt_perception.core.centred_inputs`) too, and of the calibration's.
    """

    def __init__(self, model_path: PathLike, calibration: Sequence[np.ndarray], evalset: EvalSet, *,
                 method: str = "percentile", percentile: float = 99.999, activations: str = "int8",
                 op_types: Sequence[str] = DEFAULT_OP_TYPES, cache: Optional[ResultCache] = None,
                 threads: int = 1, progress: Optional[Callable[..., Any]] = None,
                 bias_correction: bool = False, weight_rounding: Union[bool, str] = False,
                 centred_inputs: bool = False) -> None:
        from trt_perception.core.tensorrt.cache import file_sha256
        self.model_path = Path(model_path)
        self.calibration = list(calibration)
        self.evalset = evalset
        self.method, self.percentile, self.op_types = method, percentile, tuple(op_types)
        self.activations = activations
        self.bias_correction = bias_correction
        self.centred_inputs = centred_inputs
        self.weight_rounding = weight_rounding_mode(weight_rounding)
        self.cache = cache or ResultCache(None)
        self.threads = threads
        self.progress = progress
        self.recipe = {"model_sha256": file_sha256(self.model_path), "input": evalset.input_name,
                       "calibration": tensors_digest(self.calibration), "method": method,
                       "percentile": percentile, "op_types": list(self.op_types), "evaluation": evalset.digest,
                       "iou_threshold": evalset.iou_threshold, "float_nodes_read_float": True,
                       **({"activations": activations} if activations != "int8" else {}),
                       **({"bias_correction": True} if bias_correction else {}),
                       **({"centred_inputs": True} if centred_inputs else {}),
                       **({"weight_rounding": True} if self.weight_rounding == "float"
                          else {"weight_rounding": self.weight_rounding} if self.weight_rounding != "nearest" else {})}
        self._work = tempfile.TemporaryDirectory(prefix="trt_perception_sensitivity.")
        calibration_recipe = {k: v for k, v in self.recipe.items()
                              if k not in ("evaluation", "iou_threshold", "float_nodes_read_float",
                                           "bias_correction", "weight_rounding")}
        ranges_dir = self.cache.directory or Path(self._work.name)
        self.ranges_path = ranges_dir / f"int8_ranges.{recipe_digest(calibration_recipe)[:16]}.json"
        self.evaluations = 0

    def close(self) -> None:
        """Remove the sweep's temporary working directory."""
        self._work.cleanup()

    def __enter__(self) -> "SensitivitySweep":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def quantize(self, output: PathLike, exclude: Sequence[str] = (),
                 only: Optional[Sequence[str]] = None) -> QuantizeReport:
        """Write the variant with ``exclude`` kept in float (or only ``only`` quantized)."""
        self.ranges_path.parent.mkdir(parents=True, exist_ok=True)
        report = quantize_model(self.model_path, output, self.evalset.input_name, self.calibration,
                                method=self.method, percentile=self.percentile, op_types=self.op_types,
                                nodes_to_exclude=exclude, nodes_to_quantize=only, ranges_cache=self.ranges_path,
                                activations=self.activations, bias_correction=self.bias_correction,
                                weight_rounding=self.weight_rounding, centred_inputs=self.centred_inputs)
        return report

    def evaluate(self, exclude: Sequence[str] = (), only: Optional[Sequence[str]] = None) -> dict[str, Any]:
        """Comparison summary of one variant with FP32 (cached), plus its INT8 conv count."""
        recipe = {**self.recipe, "exclude": sorted(exclude), "only": sorted(only) if only is not None else None}
        cached = self.cache.get("int8_variant", recipe)
        if cached is not None:
            return dict(cached)
        path = Path(self._work.name) / "variant.onnx"
        self.quantize(path, exclude, only)
        summary = self.evalset.compare(onnx_runner(path, self.evalset.input_name, self.threads))
        summary["int8_convs"], summary["convs"] = int8_conv_share(path)
        self.evaluations += 1
        self.cache.put("int8_variant", recipe, summary)
        return summary

    def measure(self, groups: Mapping[str, Sequence[str]]) -> list[GroupSensitivity]:
        """Every group's one-at-a-time sensitivity, most sensitive first."""
        conv_nodes = set(layer_groups(self.model_path, ("Conv",), depth=0))
        items = list(groups.items())
        results = []
        for name, nodes in (self.progress(items, desc="sensitivity", unit="group") if self.progress else items):
            summary = self.evaluate(only=nodes)
            results.append(GroupSensitivity(name, tuple(nodes), sum(1 for n in nodes if n in conv_nodes), summary))
        return sorted(results, key=lambda g: g.loss, reverse=True)

    def select(self, ranking: Sequence[GroupSensitivity], target: Target, max_float_convs: Optional[int] = None,
               candidates: int = 1, refine_nodes: bool = False, by: str = "margin") -> Selection:
        """The smallest set of groups (see the module docstring) kept in float so the mixed model
        meets ``target``; at most ``max_float_convs`` convolutions in float (stops there).

        candidates: how many of the most sensitive groups not yet kept are tried at each forward
        step (each one evaluated with the groups kept so far); the one with the best
        :meth:`Target.margin` is kept (1: simply the next in ranking order; ``by="error"``: the
        one with the lowest output error, a smoother measure than detection counts). refine_nodes: after
        the backward elimination, each node of the kept groups is tried in INT8 again (convolutions
        first, in reverse graph order), kept in INT8 where the target still holds.
        """
        if candidates < 1:
            raise SensitivityError(f"candidates must be >= 1, got {candidates}")
        if by not in SELECT_BY:
            raise SensitivityError(f"by must be one of {SELECT_BY}, got {by!r}")
        by_name = {g.group: g for g in ranking}
        conv_nodes = set(layer_groups(self.model_path, ("Conv",), depth=0))

        def nodes_of(names: Sequence[str]) -> tuple[str, ...]:
            return tuple(n for name in names for n in by_name[name].nodes)

        def convs_of(names: Sequence[str]) -> int:
            return sum(by_name[name].convs for name in names)

        steps: list[Step] = []

        def step(action: str, names: Sequence[str], nodes: Optional[Sequence[str]] = None,
                 record: bool = True) -> Step:
            nodes = nodes_of(names) if nodes is None else tuple(nodes)
            summary = self.evaluate(exclude=nodes)
            result = Step(action, tuple(names), summary, target.met(summary), nodes)
            if record:
                steps.append(result)
            return result

        kept: list[str] = []
        current = step("full INT8", kept)
        while not current.met:
            pool = [g.group for g in ranking if g.group not in kept
                    and (max_float_convs is None or convs_of(kept + [g.group]) <= max_float_convs)][:candidates]
            if not pool:
                break
            trials = [step(f"keep {name} in float", kept + [name], record=False) for name in pool]
            if len(trials) > 1:
                steps.extend(dataclasses.replace(t, action=f"try {t.action}") for t in trials)
            best = max(trials, key=lambda t: (target.margin(t.summary), -t.summary["output_error"]) if by == "margin"
                       else (-t.summary["output_error"], target.margin(t.summary)))
            kept = list(best.float_groups)
            current = best
            steps.append(current)
        float_nodes = nodes_of(kept)
        if current.met:
            for name in reversed(list(kept)):  # least recently kept first
                trial = [other for other in kept if other != name]
                if step(f"try {name} in INT8 again", trial).met:
                    kept = trial
            float_nodes = nodes_of(kept)
            if refine_nodes:
                order = sorted(reversed(float_nodes), key=lambda n: n not in conv_nodes)
                for node in order:
                    trial_nodes = tuple(n for n in float_nodes if n != node)
                    groups = [g for g in kept if set(by_name[g].nodes) & set(trial_nodes)]
                    if step(f"try node {node} in INT8 again", groups, trial_nodes).met:
                        float_nodes, kept = trial_nodes, groups
        return Selection(tuple(kept), float_nodes, current.met, tuple(steps))
