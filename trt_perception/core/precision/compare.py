"""A candidate model's outputs against the FP32 reference's, on the same input tensors.

Per output tensor, over all frames: the largest and the mean absolute error ``|c - r|`` and
relative error ``|c - r| / max(|r|, floor)``, where ``floor`` is 1e-3 of the largest ``|r|`` of
that tensor on that frame (so values near zero do not make the relative error infinite), plus the
*normalized* error ``sum|c - r| / sum|r|``. With a decoder that returns detections
(``boxes_xyxy``, ``scores``, ``class_ids``), the candidate's detections are matched to the
reference's (:class:`~trt_perception.core.tensorrt.agreement.DetectionAgreement`): matched boxes,
mean IoU, score drift, precision and recall of the candidate taking FP32 as the truth.

:class:`Tolerances` turns a comparison into pass/fail with the reasons.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from trt_perception.core.tensorrt.agreement import DetectionAgreement

#: decodes raw outputs (by tensor name) of the frame with the given index into detections
FrameDecoder = Callable[[Mapping[str, np.ndarray], int], Any]
RELATIVE_FLOOR = 1e-3


class CompareError(ValueError):
    """Outputs that cannot be compared (missing tensor, other shape), with the reason."""


@dataclass
class TensorError:
    """Accumulated error of one output tensor over frames (see the module docstring)."""

    name: str
    frames: int = 0
    elements: int = 0
    max_abs: float = 0.0
    sum_abs: float = 0.0
    max_rel: float = 0.0
    sum_rel: float = 0.0
    sum_ref_abs: float = 0.0
    ref_max_abs: float = 0.0
    non_finite: int = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Accumulate one frame: ``reference`` (FP32) and ``candidate`` of the same shape, any float dtype; raises
        :class:`CompareError` on a shape mismatch.
        """
        if reference.shape != candidate.shape:
            raise CompareError(f"output {self.name!r}: candidate shape {list(candidate.shape)} "
                               f"!= reference {list(reference.shape)}")
        ref = np.asarray(reference, np.float64)
        cand = np.asarray(candidate, np.float64)
        finite = np.isfinite(cand)
        self.non_finite += int(finite.size - np.count_nonzero(finite))
        diff = np.abs(np.where(finite, cand, np.inf) - ref)
        ref_abs = np.abs(ref)
        peak = float(ref_abs.max()) if ref_abs.size else 0.0
        floor = max(peak * RELATIVE_FLOOR, float(np.finfo(np.float32).tiny))
        rel = diff / np.maximum(ref_abs, floor)
        self.frames += 1
        self.elements += diff.size
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.max_rel = max(self.max_rel, float(rel.max()))
        self.sum_abs += float(diff.sum())
        self.sum_rel += float(rel.sum())
        self.sum_ref_abs += float(ref_abs.sum())
        self.ref_max_abs = max(self.ref_max_abs, peak)

    def summary(self) -> dict[str, Any]:
        """The errors over all frames so far: max/mean absolute and relative, normalized, non-finite count."""
        n = max(self.elements, 1)
        return {"frames": self.frames, "max_abs": self.max_abs, "mean_abs": self.sum_abs / n,
                "max_rel": self.max_rel, "mean_rel": self.sum_rel / n,
                "normalized": self.sum_abs / self.sum_ref_abs if self.sum_ref_abs else
                (0.0 if self.sum_abs == 0 else math.inf),
                "reference_max_abs": self.ref_max_abs, "non_finite": self.non_finite}


@dataclass
class OutputComparison:
    """Accumulates frames of reference and candidate outputs (``add``), then ``summary()``."""

    iou_threshold: float = 0.5
    tensors: dict[str, TensorError] = field(default_factory=dict)
    detections: Optional[DetectionAgreement] = None

    def add(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
            decode: Optional[FrameDecoder] = None, frame: int = 0) -> None:
        """One frame (index ``frame``): every reference output compared with the candidate's of
        the same name; with ``decode``, their detections too.
        """
        missing = [name for name in reference if name not in candidate]
        if missing:
            raise CompareError(f"the candidate lacks outputs {missing} (it has {sorted(candidate)})")
        for name, ref in reference.items():
            self.tensors.setdefault(name, TensorError(name)).add(ref, candidate[name])
        if decode is not None:
            ref_det, cand_det = decode(reference, frame), decode(candidate, frame)
            if ref_det is not None and hasattr(ref_det, "boxes_xyxy"):
                if self.detections is None:
                    self.detections = DetectionAgreement(self.iou_threshold)
                self.detections.add(ref_det.boxes_xyxy, ref_det.scores, ref_det.class_ids,
                                    cand_det.boxes_xyxy, cand_det.scores, cand_det.class_ids)

    @property
    def frames(self) -> int:
        """Frames compared so far (the most of any output tensor)."""
        return max((t.frames for t in self.tensors.values()), default=0)

    def output_error(self) -> float:
        """Mean over output tensors of the normalized error: one number for ranking variants."""
        values = [t.summary()["normalized"] for t in self.tensors.values()]
        return float(np.mean(values)) if values else 0.0

    def summary(self) -> dict[str, Any]:
        """Frames, per-tensor errors and (with a detection decoder) the detection agreement."""
        return {"frames": self.frames, "tensors": {name: t.summary() for name, t in self.tensors.items()},
                "output_error": self.output_error(),
                "detections": self.detections.summary() if self.detections is not None else None}


@dataclass(frozen=True)
class Tolerances:
    """Pass/fail limits; ``None`` = not checked. Tensor limits apply to every output tensor;
    detection limits only where the model's decoder gives detections.
    """

    max_abs: Optional[float] = None
    mean_abs: Optional[float] = None
    max_rel: Optional[float] = None
    mean_rel: Optional[float] = None
    min_recall: Optional[float] = 0.99
    min_precision: Optional[float] = 0.99
    min_mean_iou: Optional[float] = None

    def failures(self, summary: Mapping[str, Any]) -> list[str]:
        """Why ``summary`` (of :meth:`OutputComparison.summary`) fails; empty when it passes."""
        problems = []
        if summary["frames"] == 0:
            problems.append("no frames were compared")
        for name, stats in summary["tensors"].items():
            if stats["non_finite"]:
                problems.append(f"{name}: {stats['non_finite']} non-finite values (overflow?)")
            for key in ("max_abs", "mean_abs", "max_rel", "mean_rel"):
                limit = getattr(self, key)
                if limit is not None and not stats[key] <= limit:
                    problems.append(f"{name}: {key} {stats[key]:.4g} > {limit:g}")
        detections = summary.get("detections")
        if detections is not None:
            for key, limit in (("recall", self.min_recall), ("precision", self.min_precision),
                               ("mean_iou", self.min_mean_iou)):
                value = detections[key]
                if limit is not None and not value >= limit:  # NaN (nothing matched) fails too
                    problems.append(f"detections: {key} {value:.4f} < {limit:g}")
        return problems

    def to_dict(self) -> dict[str, Optional[float]]:
        """The tolerances as a JSON-ready mapping (None: not checked)."""
        return asdict(self)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The per-tensor table and the detection agreement of a summary, as text."""
    lines = [f"{'output':<24} {'max abs':>10} {'mean abs':>10} {'max rel':>10} {'mean rel':>10} "
             f"{'normalized':>10} {'ref max':>10}"]
    for name, s in summary["tensors"].items():
        lines.append(f"{name:<24} {s['max_abs']:>10.4g} {s['mean_abs']:>10.4g} {s['max_rel']:>10.4g} "
                     f"{s['mean_rel']:>10.4g} {s['normalized']:>10.4g} {s['reference_max_abs']:>10.4g}"
                     + (f"  ({s['non_finite']} non-finite)" if s["non_finite"] else ""))
    d = summary.get("detections")
    if d is not None:
        lines.append(f"detections: {d['matched']} of {d['reference_detections']} reference matched "
                     f"(recall {d['recall']:.4f}), {d['test_detections']} candidate (precision "
                     f"{d['precision']:.4f}), mean IoU {d['mean_iou']:.4f}, score drift mean "
                     f"{d['score_drift_mean']:+.4f} / mean abs {d['score_drift_mean_abs']:.4f} / max abs "
                     f"{d['score_drift_max_abs']:.4f}, over {d['images']} frames")
    return "\n".join(lines)
