"""SsdDecoder: raw SSD outputs of one image -> :class:`Detections` in source pixels.

Steps, in order (every step vectorized except the greedy NMS loop over the few survivors):

1. scores of the non-background classes allowed by ``class_filter``; candidates are the
   (anchor, class) pairs with ``score > score_threshold`` (:mod:`.scores`);
2. per class, the ``pre_nms_top_k`` best candidates (ties: lower anchor first);
3. their boxes decoded (:mod:`.box_coding`) against the anchors mapped to source pixels
   (:meth:`ResizeGeometry.to_source`; decoding is linear in the anchor's units), unclipped;
4. per-class greedy NMS on the unclipped boxes, suppressing IoU > ``nms_iou_threshold``
   (:mod:`.nms`; the same as NMS in normalized units, IoU being invariant under the mapping);
5. boxes clipped to the source image, zero-area boxes dropped (as TF does after NMS);
6. the ``top_k`` best, by descending score.

Config (the ``decoder`` section of a model config YAML)::

    anchors: {type: ssd_anchor_generator | prior_box, feature_map_sizes: [...], ...}
    box_coder: {order: yxhw | xywh, scale_factors: [10, 10, 5, 5]}
    score_converter: sigmoid | softmax | identity
    has_background: true         # class column 0 is background (never reported)
    score_threshold: 0.5         # runtime parameters (set_params), defaults: SSD_PARAMS
    nms_iou_threshold: 0.6
    pre_nms_top_k: 100
    top_k: 100
    class_filter: []             # class ids or labels; empty = all classes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np

from trt_perception.core.decode.ssd.anchors import generate_anchors
from trt_perception.core.decode.ssd.box_coding import BoxCoder
from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.decode.ssd.nms import nms
from trt_perception.core.decode.ssd.scores import SCORE_CONVERTERS, CandidateSelector
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfig, ModelConfigError
from trt_perception.core.param_spec import ParamSpec

ClassRef = Union[int, str]

#: the runtime parameters (:meth:`SsdDecoder.set_params`), declared once: default, range, meaning
SSD_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("score_threshold", 0.5, "Minimum detection score.", float_range=(0.0, 1.0),
              runtime=True, from_model=True),
    ParamSpec("nms_iou_threshold", 0.6, "Per-class NMS suppresses boxes overlapping a better one "
              "by more than this IoU.", float_range=(0.0, 1.0), runtime=True, from_model=True),
    ParamSpec("pre_nms_top_k", 100, "Best candidates per class kept before NMS.",
              int_range=(1, 10000), runtime=True, from_model=True),
    ParamSpec("top_k", 100, "Most detections reported per image (after NMS).",
              int_range=(1, 10000), runtime=True, from_model=True),
    ParamSpec("class_filter", [], "Class labels or ids to report (empty: all).", runtime=True,
              from_model=True),
)
RUNTIME_DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in SSD_PARAMS}
_STATIC_KEYS = {"anchors", "box_coder", "score_converter", "has_background"}


@dataclass(frozen=True)
class _RuntimeState:
    """The runtime parameters, the class ids they filter on and the candidate selectors built from
    them, replaced as one object by :meth:`SsdDecoder.set_params` (a single assignment), so a
    decode that read the old state keeps it to the end and caches selectors in it, never in the new
    one.
    """

    params: Mapping[str, Any]
    filter_ids: tuple[int, ...]
    selectors: dict[int, CandidateSelector] = field(default_factory=dict)


def top_k_per_class(class_ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the ``k`` best scores of each class; ties keep the lower index."""
    if class_ids.size <= k:
        return np.arange(class_ids.size)
    order = np.lexsort((-scores, class_ids))          # by class, then descending score (stable)
    sorted_ids = class_ids[order]
    rank = np.arange(order.size) - np.searchsorted(sorted_ids, sorted_ids, side="left")
    return np.sort(order[rank < k])


class SsdDecoder:
    """Decoder of SSD box encodings + class outputs (see the module docstring).

    Roles: ``box_encodings`` float[1, A, 4] (any shape of A * 4 values) and ``class_predictions``
    float[1, A, C] (any shape of A * C values), A = number of anchors, C = class columns.
    """

    roles: tuple[str, ...] = ("box_encodings", "class_predictions")

    def __init__(self, anchors: np.ndarray, box_coder: BoxCoder, score_converter: str = "sigmoid",
                 labels: Sequence[str] = (), has_background: bool = True, **params: Any) -> None:
        if score_converter not in SCORE_CONVERTERS:
            raise ValueError(f"score_converter must be one of {SCORE_CONVERTERS}, got {score_converter!r}")
        anchors = np.asarray(anchors, dtype=np.float32)
        if anchors.ndim != 2 or anchors.shape[1] != 4 or anchors.shape[0] == 0:
            raise ValueError(f"anchors must be float[A, 4] (cx, cy, w, h), got shape {anchors.shape}")
        self.anchors = anchors
        self.box_coder = box_coder
        self.score_converter = score_converter
        self.labels = list(labels)
        self.first_class = 1 if has_background else 0
        self._state = _RuntimeState({}, ())
        self._source_anchors: dict[ResizeGeometry, tuple[np.ndarray, np.ndarray]] = {}
        self.set_params({**RUNTIME_DEFAULTS, **params})

    @classmethod
    def from_config(cls, config: ModelConfig) -> "SsdDecoder":
        """Build from a model config's ``decoder`` section, labels and input size."""
        section = dict(config.decoder)
        where = f"{config.source or 'model config'}: decoder"
        unknown = set(section) - _STATIC_KEYS - set(RUNTIME_DEFAULTS)
        if unknown:
            raise ModelConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: "
                                   f"{sorted(_STATIC_KEYS | set(RUNTIME_DEFAULTS))}")
        if not isinstance(section.get("anchors"), dict):
            raise ModelConfigError(f"{where}: an 'anchors' mapping is required "
                                   "(type: ssd_anchor_generator or prior_box, feature_map_sizes, ...)")
        input_size = (config.preprocess.width, config.preprocess.height)
        try:
            anchors = generate_anchors(section.pop("anchors"), input_size)
        except ValueError as exc:
            raise ModelConfigError(f"{where}.anchors: {exc}") from exc
        try:
            coder = BoxCoder.from_dict(section.pop("box_coder", None) or {})
            return cls(anchors, coder, labels=config.labels, **section)
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(f"{where}: {exc}") from exc

    # runtime parameters -------------------------------------------------------------------

    def runtime_params(self) -> dict[str, Any]:
        """Current ``score_threshold``, ``nms_iou_threshold``, ``pre_nms_top_k``, ``top_k``,
        ``class_filter``.
        """
        return {key: (list(value) if isinstance(value, list) else value)
                for key, value in self._state.params.items()}

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Change runtime parameters; on any invalid value raise ValueError and change nothing.

        Safe while another thread decodes: the new state replaces the old in one assignment.
        """
        new = {**self._state.params, **params}
        problems = [f"unknown parameter {key!r} (known: {sorted(RUNTIME_DEFAULTS)})"
                    for key in params if key not in RUNTIME_DEFAULTS]
        for key, low, high, closed_high in (("score_threshold", 0.0, 1.0, False),
                                            ("nms_iou_threshold", 0.0, 1.0, True)):
            value = new.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    low <= value < high or (closed_high and value == high)):
                problems.append(f"{key} must be a number in [{low}, {high}{']' if closed_high else ')'}, "
                                f"got {value!r}")
        for key in ("pre_nms_top_k", "top_k"):
            value = new.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                problems.append(f"{key} must be an integer >= 1, got {value!r}")
        filter_ids: list[int] = []
        class_filter: Any = new.get("class_filter")
        if class_filter is None or isinstance(class_filter, (str, int)):
            problems.append(f"class_filter must be a list of class ids or labels, got {class_filter!r}")
        else:
            for ref in class_filter:
                class_id, problem = self._resolve_class(ref)
                if problem:
                    problems.append(problem)
                else:
                    filter_ids.append(class_id)
        if problems:
            raise ValueError("invalid SSD decoder parameters: " + "; ".join(problems))
        new["score_threshold"] = float(new["score_threshold"])
        new["nms_iou_threshold"] = float(new["nms_iou_threshold"])
        new["pre_nms_top_k"] = int(new["pre_nms_top_k"])
        new["top_k"] = int(new["top_k"])
        new["class_filter"] = list(class_filter)
        self._state = _RuntimeState(new, tuple(sorted(set(filter_ids))))

    def _resolve_class(self, ref: ClassRef) -> tuple[int, str]:
        """(class id, "") or (-1, reason) for a class id or label in ``class_filter``."""
        if isinstance(ref, str):
            if ref not in self.labels:
                known = self.labels[self.first_class:] or "none: no labels file"
                return -1, f"class_filter label {ref!r} is not a class label (labels: {known})"
            class_id = self.labels.index(ref)
        elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            class_id = int(ref)
        else:
            return -1, f"class_filter entries must be class ids or labels, got {ref!r}"
        if class_id < self.first_class or (self.labels and class_id >= len(self.labels)):
            top = f"..{len(self.labels) - 1}" if self.labels else " or more"
            return -1, f"class_filter id {class_id} is not a detectable class (ids {self.first_class}{top})"
        return class_id, ""

    def _selector(self, state: _RuntimeState, num_columns: int) -> CandidateSelector:
        """The candidate selector of ``state`` for a class output of ``num_columns`` columns
        (cached in ``state``).
        """
        selector = state.selectors.get(num_columns)
        if selector is None:
            if self.labels and len(self.labels) != num_columns:
                raise ValueError(f"the model's class output has {num_columns} columns but the labels "
                                 f"file has {len(self.labels)} lines: they must correspond one to one "
                                 "(include the background line)")
            wanted = state.filter_ids or range(self.first_class, num_columns)
            selector = CandidateSelector(self.score_converter, [c for c in wanted if c < num_columns],
                                         state.params["score_threshold"])
            state.selectors[num_columns] = selector
        return selector

    # decoding -----------------------------------------------------------------------------

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> Detections:
        """Detections of one image from its outputs by role (module docstring)."""
        count = len(self.anchors)
        encodings, logits = outputs["box_encodings"], outputs["class_predictions"]
        if encodings.size != count * 4:
            raise ValueError(f"box_encodings has shape {list(encodings.shape)} but the decoder's anchor "
                             f"configuration makes {count} anchors ([1, {count}, 4] expected): check "
                             "decoder.anchors and the output mapping")
        if logits.size == 0 or logits.size % count:
            raise ValueError(f"class_predictions has shape {list(logits.shape)}, not [1, {count}, C] "
                             f"for the decoder's {count} anchors")
        logits = logits.reshape(count, -1)
        state = self._state  # one read: a concurrent set_params does not change this frame's values
        selector = self._selector(state, logits.shape[1])
        anchor_ids, class_ids, scores = selector(logits)
        if scores.size == 0:
            return Detections.empty()
        p = state.params
        if scores.size > p["pre_nms_top_k"]:
            chosen = top_k_per_class(class_ids, scores, p["pre_nms_top_k"])
            anchor_ids, class_ids, scores = anchor_ids[chosen], class_ids[chosen], scores[chosen]
        anchors, limit = self._anchors_in_source(geometry)
        boxes = self.box_coder.decode(encodings.reshape(count, 4)[anchor_ids], anchors[anchor_ids])
        kept = nms(boxes, scores, p["nms_iou_threshold"], class_ids if selector.classes.size > 1 else None)
        boxes = boxes[kept]
        np.maximum(boxes, 0.0, out=boxes)
        np.minimum(boxes, limit, out=boxes)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not valid.all():
            kept, boxes = kept[valid], boxes[valid]
        kept, boxes = kept[:p["top_k"]], boxes[:p["top_k"]]
        ids = class_ids[kept].astype(np.int32)
        return Detections(boxes_xyxy=boxes, scores=scores[kept], class_ids=ids,
                          labels=[self._label(i) for i in ids.tolist()])

    def _anchors_in_source(self, geometry: ResizeGeometry) -> tuple[np.ndarray, np.ndarray]:
        """Anchors float32[A, 4] (cx, cy, w, h) in source pixels and the clip limit float32[4]
        (W, H, W, H), cached per geometry.

        Box decoding is linear in the anchor's units, so decoding against these anchors gives
        boxes already in source pixels (via :meth:`ResizeGeometry.to_source`, which is affine).
        """
        cached = self._source_anchors.get(geometry)
        if cached is None:
            a = self.anchors.astype(np.float64)
            cx, cy = geometry.to_source(a[:, 0] * geometry.dst_w, a[:, 1] * geometry.dst_h)
            x0, y0 = geometry.to_source(np.zeros(1), np.zeros(1))
            w, h = geometry.to_source(a[:, 2] * geometry.dst_w, a[:, 3] * geometry.dst_h)
            anchors = np.stack([cx, cy, w - x0, h - y0], axis=1).astype(np.float32)
            limit = np.array([geometry.src_w, geometry.src_h] * 2, dtype=np.float32)
            if len(self._source_anchors) >= 8:        # a camera rarely changes size; bound the cache
                self._source_anchors.clear()
            cached = self._source_anchors[geometry] = (anchors, limit)
        return cached

    def _label(self, class_id: int) -> str:
        return self.labels[class_id] if class_id < len(self.labels) else str(class_id)
