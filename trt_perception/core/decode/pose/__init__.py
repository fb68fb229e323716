"""PAF human pose decoder: confidence maps + part affinity fields -> skeletons.

Model I/O (trt_pose's ``resnet18_baseline_att`` / ``densenet121_baseline_att``): ``cmap``
float32[N, C, H, W], one confidence map per part, and ``paf`` float32[N, 2L, H, W], two channels
per link of the :class:`~trt_perception.core.decode.pose.topology.Topology` (channel 2k: y, 2k + 1:
x of the unit vector from part_a to part_b of link k). H x W is the input size / 4.

Terminology (as trt_pose's ``parse/README.md``):

* ``C`` parts, ``L`` links, ``H x W`` map size in cells, ``M`` peaks found (all parts),
  ``T`` candidate connections, ``O`` people found.
* map cells: continuous (x, y) with the centre of cell (row i, column j) at (j + 0.5, i + 0.5) and
  the map edges at 0 and W (H), like :mod:`trt_perception.core.geometry`; one cell spans
  input_w / W model-input pixels.

Steps (one module each): :mod:`.find_peaks` (local maxima above ``peak_threshold``),
:mod:`.refine_peaks` (sub-cell position), :mod:`.hidden_peaks` (keypoints merged into a found peak's
bump, from the map's excess over the found peaks' Gaussians), :mod:`.paf_score_graph` (direction
agreement of the field along each candidate pair), :mod:`.assignment` (one-to-one per link),
:mod:`.connect_parts` (people), and again :mod:`.assignment` and :mod:`.connect_parts` with weights
from :mod:`.limb_lengths` (a pair's length against its person's size). :class:`PoseParser` chains
them in map cells, as one compiled call (:mod:`.kernels`, numba, same results) where
:mod:`.compiled` can load it; :class:`PoseDecoder` is the
:class:`~trt_perception.core.decode.Decoder` that also maps keypoints to source-image pixels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping, Optional

import numpy as np

from trt_perception.core.decode.pose.assignment import assignment
from trt_perception.core.decode.pose.compiled import load as load_compiled
from trt_perception.core.decode.pose.compiled import pack_params
from trt_perception.core.decode.pose.connect_parts import connect_parts
from trt_perception.core.decode.pose.find_peaks import find_peaks, noise_level, pad_maps
from trt_perception.core.decode.pose.hidden_peaks import hidden_peaks, measured_width
from trt_perception.core.decode.pose.limb_lengths import length_weights
from trt_perception.core.decode.pose.paf_score_graph import paf_score_graph
from trt_perception.core.decode.pose.refine_peaks import refine_peaks
from trt_perception.core.decode.pose.topology import COCO18, Topology, load_topology
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfig, ModelConfigError
from trt_perception.core.param_spec import ParamSpec

__all__ = ["POSE_PARAMS", "PoseParams", "PoseFieldError", "Poses", "Skeleton", "PoseParser", "PoseDecoder",
           "Topology", "COCO18", "load_topology"]


class PoseFieldError(ValueError):
    """cmap / paf arrays that cannot be decoded (shape, dtype, NaN/Inf), with the reason."""


@dataclass(frozen=True)
class PoseParams:
    """Decoder parameters; :data:`POSE_PARAMS` declares those that may change while running."""

    #: a peak's confidence map value must exceed this
    peak_threshold: float = 0.1
    #: a peak is the maximum of a peak_window x peak_window window (odd, 3..9)
    peak_window: int = 3
    #: at most this many peaks per part (the highest), before hidden peaks are added
    max_peaks: int = 100
    #: the peak threshold and the hidden-peak margin are raised to noise_factor x the noise level of the
    #: confidence maps, estimated from their negative values (``find_peaks.noise_level``), so that noise
    #: makes neither peaks nor hidden peaks; 0: off
    noise_factor: float = 5.0
    #: width (standard deviation, cells) of the Gaussian bumps the model was trained to put at
    #: keypoints: hidden peaks (:mod:`.hidden_peaks`) are looked for within ceil(sigma) cells of the
    #: found peaks, with the width measured on the map (sigma where it cannot be), when some part has
    #: two or more peaks (a single person hides nothing); 0: no hidden peaks
    sigma: float = 1.5
    #: a hidden peak's cell exceeds what the found peaks explain by more than this (at least
    #: noise_factor x the noise level)
    hidden_margin: float = 0.15
    #: a link's score (weighted mean of its sample values, in [-1, 1]) must exceed this
    link_threshold: float = 0.1
    #: PAF samples per candidate link
    num_samples: int = 10
    #: a sample's value is the cosine between field and link where the field is at least this
    #: strong, proportionally less where it is weaker (field . unit link / max(|field|, paf_floor))
    paf_floor: float = 0.5
    #: sample weights 1 + end_weight (2 t - 1)^2 (t: 0 at part_a, 1 at part_b) favour the samples
    #: near the peaks in the link's score
    end_weight: float = 5.0
    #: a sample "follows" the link when its value exceeds this
    sample_threshold: float = 0.05
    #: at least this fraction of the samples must follow the link
    min_sample_fraction: float = 0.8
    #: limb-length consistency (:mod:`.limb_lengths`): after a first assembly, the per-link assignment is
    #: solved again with each pair's score lowered by length_weight x (its log-length's deviation from its
    #: person's size, beyond length_tolerance); 0: off (one assignment)
    length_weight: float = 0.5
    #: deviation of a pair's log-length from its person's size that costs nothing (0.15: about 16 %)
    length_tolerance: float = 0.15
    #: people with fewer keypoints are dropped
    min_parts: int = 3
    #: people with a lower score are dropped
    min_score: float = 0.0
    #: at most this many people are returned (highest scores first)
    max_people: int = 100

    def __post_init__(self) -> None:
        problems = []
        for name in ("peak_threshold", "noise_factor", "sigma", "hidden_margin", "link_threshold", "paf_floor",
                     "end_weight", "sample_threshold", "min_sample_fraction", "length_weight", "length_tolerance",
                     "min_score"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
        for name, low, high in (("peak_window", 3, 9), ("max_peaks", 1, 10000), ("num_samples", 2, 100),
                                ("min_parts", 1, 1000), ("max_people", 1, 10000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append(f"{name} must be an integer in {low}..{high}, got {value!r}")
        if not problems:
            if self.peak_window % 2 == 0:
                problems.append(f"peak_window must be odd, got {self.peak_window}")
            if not self.noise_factor >= 0.0:
                problems.append(f"noise_factor must be >= 0, got {self.noise_factor}")
            if not 0.0 <= self.sigma <= 10.0:
                problems.append(f"sigma must be in [0, 10] cells, got {self.sigma}")
            if not self.hidden_margin > 0.0:
                problems.append(f"hidden_margin must be > 0, got {self.hidden_margin}")
            if not 0.0 <= self.link_threshold < 1.0:
                problems.append(f"link_threshold must be in [0, 1), got {self.link_threshold}")
            if not self.paf_floor > 0.0:
                problems.append(f"paf_floor must be > 0, got {self.paf_floor}")
            if not self.end_weight >= 0.0:
                problems.append(f"end_weight must be >= 0, got {self.end_weight}")
            if not -1.0 <= self.sample_threshold < 1.0:
                problems.append(f"sample_threshold must be in [-1, 1), got {self.sample_threshold}")
            if not 0.0 <= self.min_sample_fraction <= 1.0:
                problems.append(f"min_sample_fraction must be in [0, 1], got {self.min_sample_fraction}")
            for name in ("length_weight", "length_tolerance"):
                if not getattr(self, name) >= 0.0:
                    problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if problems:
            raise ValueError("invalid pose decoder parameters: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "PoseParams":
        """From a mapping of parameter names (a YAML section, CLI options); unknown keys are an error."""
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown pose decoder parameters {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**dict(values))


#: the runtime parameters (:meth:`PoseDecoder.set_params`): defaults those of :class:`PoseParams`
POSE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("peak_threshold", PoseParams.peak_threshold, "Minimum confidence-map value of a keypoint.",
              float_range=(0.0, 1.0), runtime=True, from_model=True),
    ParamSpec("link_threshold", PoseParams.link_threshold, "Minimum PAF score of a link between two "
              "keypoints.", float_range=(0.0, 1.0), runtime=True, from_model=True),
    ParamSpec("min_parts", PoseParams.min_parts, "People with fewer keypoints are not reported.",
              int_range=(1, 1000), runtime=True, from_model=True),
    ParamSpec("min_score", PoseParams.min_score, "People with a lower score are not reported.",
              float_range=(0.0, 1.0), runtime=True, from_model=True),
    ParamSpec("max_people", PoseParams.max_people, "Most people reported per image (highest scores).",
              int_range=(1, 1000), runtime=True, from_model=True),
    ParamSpec("noise_factor", PoseParams.noise_factor, "The peak threshold and the hidden-peak margin are at "
              "least this times the confidence maps' noise level (estimated from their negative values; 0: off).",
              float_range=(0.0, 100.0), runtime=True, from_model=True),
)
RUNTIME = tuple(spec.name for spec in POSE_PARAMS)


@dataclass(frozen=True)
class Poses:
    """O people, highest score first, as arrays.

    keypoints: float64[O, C, 3] (x, y, score) per part; x, y are NaN and score 0 for absent parts.
    scores: float64[O] person scores. links: bool[O, L] whether link k joins two of its keypoints.
    The coordinates are map cells (:class:`PoseParser`) or source pixels (:class:`PoseDecoder`).
    """

    keypoints: np.ndarray
    scores: np.ndarray
    links: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.size)

    def skeletons(self, topology: Topology) -> list["Skeleton"]:
        """One :class:`Skeleton` per person."""
        present = self.keypoints[:, :, 2] > 0
        out = []
        for person in range(len(self)):
            parts = np.flatnonzero(present[person])
            out.append(Skeleton(score=float(self.scores[person]), parts=parts,
                                xy=self.keypoints[person, parts, :2],
                                scores=self.keypoints[person, parts, 2],
                                links=topology.links[self.links[person]]))
        return out


@dataclass(frozen=True)
class Skeleton:
    """One person: K keypoints and E links.

    score: person score in [0, 1] (mean of its keypoint scores and link scores); parts: int64[K]
    part ids, ascending; xy: float64[K, 2] (x, y); scores: float64[K] confidence map value at each
    keypoint's peak; links: int64[E, 2] (part_a, part_b) of the links that join its keypoints.
    """

    score: float
    parts: np.ndarray
    xy: np.ndarray
    scores: np.ndarray
    links: np.ndarray


def _check_field(name: str, array: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``array`` as C-contiguous float32[channels, H, W], or PoseFieldError saying what is wrong
    (NaN/Inf values are looked for by :func:`_check_finite` and :func:`.paf_score_graph`, or by the
    compiled decoder).
    """
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise PoseFieldError(f"{name} must be a floating-point array, got "
                             f"{getattr(array, 'dtype', type(array).__name__)}")
    if array.ndim != 3 or array.shape[0] != channels or 0 in array.shape:
        raise PoseFieldError(f"{name} must have shape [{channels}, H, W] ({what}), got {list(array.shape)}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_finite(name: str, array: np.ndarray) -> None:
    """PoseFieldError when ``array`` holds NaN or Inf values (:func:`_non_finite`)."""
    if not (math.isfinite(np.maximum.reduce(array, axis=None))
            and math.isfinite(np.minimum.reduce(array, axis=None))):
        raise _non_finite(name, array)


def _non_finite(name: str, array: np.ndarray) -> PoseFieldError:
    """The error for NaN/Inf values in ``array`` that the decoder reads, counting all of them."""
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    where = " (some where limbs are sampled)" if name == "paf" else ""
    return PoseFieldError(f"{name} has {bad} NaN/Inf values out of {array.size}{where}; the model output is "
                          f"invalid (check the engine precision and the input normalization)")


class PoseParser:
    """Decodes one image's cmap and paf into :class:`Poses` in map cells (see the module docstring).

    ``compiled``: None (default) runs the compiled decoder (:mod:`.compiled`, numba) when it is
    available and the numpy steps otherwise; False always the numpy steps (the reference); True
    requires the compiled decoder (RuntimeError when unavailable). Both give the same results.
    Keeps buffers between calls: use one parser per thread.
    """

    def __init__(self, topology: Topology = COCO18, params: PoseParams = PoseParams(),
                 compiled: Optional[bool] = None) -> None:
        self.topology = topology
        self.params = params
        self._padded: Optional[np.ndarray] = None  # numpy steps: reused padded cmap buffer
        # compiled path: the parameters and cmap shape the kernels' arguments were packed for, and those
        # arguments
        self._packed: tuple[Optional[PoseParams], tuple[int, ...], tuple[np.ndarray, ...]] = (None, (), ())
        self._kernels = None
        if compiled is not False and topology.num_parts <= 62:  # the kernels keep a person's parts in an int64
            self._kernels = load_compiled()
        if compiled and self._kernels is None:
            raise RuntimeError("the compiled pose decoder is unavailable (see the log); install numba "
                               "(requirements.txt) or use compiled=None")

    @property
    def compiled(self) -> bool:
        """Whether calls run the compiled decoder."""
        return self._kernels is not None

    def __call__(self, cmap: np.ndarray, paf: np.ndarray) -> Poses:
        """cmap: float[C, H, W]; paf: float[2L, H, W] (same H, W). Raises :class:`PoseFieldError` for
        wrong shapes, NaN/Inf in cmap, or NaN/Inf in a cell of paf that is sampled (the midpoints of all
        candidate pairs and the samples of those whose midpoint follows the link, :mod:`.paf_score_graph`;
        elsewhere paf's values cannot change the result and are not read).
        """
        topo, prm = self.topology, self.params
        cmap = _check_field("cmap", cmap, topo.num_parts, f"{topo.num_parts} parts of the topology")
        paf = _check_field("paf", paf, 2 * topo.num_links, f"2 x {topo.num_links} links of the topology")
        if cmap.shape[1:] != paf.shape[1:]:
            raise PoseFieldError(f"cmap and paf maps must have the same size, got "
                                 f"{cmap.shape[2]}x{cmap.shape[1]} and {paf.shape[2]}x{paf.shape[1]}")
        if self._kernels is not None:
            return self._parse_compiled(self._kernels, cmap, paf)
        _check_finite("cmap", cmap)  # paf: where it is sampled (paf_score_graph)
        pad = max(prm.peak_window // 2, math.ceil(prm.sigma) + 1)  # hidden_peaks looks ceil(sigma) + 1 around
        return self._parse_numpy(cmap, paf, pad)

    def _parse_compiled(self, kernels: ModuleType, cmap: np.ndarray, paf: np.ndarray) -> Poses:
        # the kernels read cmap itself (no padded copy); their scratch: work (-inf, one map) and
        # cand (the candidate peaks: at most one cell in two of each row, and 8 spare values)
        if self._packed[0] is not self.params or self._packed[1] != cmap.shape:
            channels, height, width = cmap.shape
            work = np.full(height * width, -np.inf, dtype=np.float32)
            cand = np.empty(channels * height * ((width + 1) // 2) + 8, dtype=np.int64)
            self._packed = (self.params, cmap.shape, (self.topology.links, *pack_params(self.params), work, cand))
        bad, keypoints, scores, links = kernels.parse(cmap, paf, *self._packed[2])
        if bad:  # cmap as a whole, or a sampled cell of paf; the message counts the field's bad values
            _check_finite("cmap", cmap)
            raise _non_finite("paf", paf)
        return Poses(keypoints, scores, links)

    def _parse_numpy(self, cmap: np.ndarray, paf: np.ndarray, pad: int) -> Poses:
        topo, prm = self.topology, self.params
        radius = prm.peak_window // 2
        self._padded = padded = pad_maps(cmap, pad, self._padded)
        threshold, margin = prm.peak_threshold, prm.hidden_margin
        if prm.noise_factor > 0.0:
            floor = prm.noise_factor * noise_level(cmap)
            threshold, margin = max(threshold, floor), max(margin, floor)
        peaks = find_peaks(padded, radius, threshold, prm.max_peaks)
        num_parts, num_links = topo.num_parts, topo.num_links
        if peaks.index.size == 0:
            return Poses(np.zeros((0, num_parts, 3)), np.zeros(0), np.zeros((0, num_links), dtype=bool))
        index, part, counts = peaks
        x, y, offset, curvature = refine_peaks(padded, index, pad)
        if prm.sigma > 0.0 and counts.max() > 1:  # one peak per part: one person, nothing hidden
            hidden, hx, hy = hidden_peaks(padded, pad, index, x, y, offset,
                                          padded.reshape(-1).take(index),
                                          measured_width(curvature, prm.sigma), math.ceil(prm.sigma),
                                          margin, threshold)
            if hidden.size:  # into the peak list, still grouped by part
                order = np.argsort(np.concatenate([index, hidden]), kind="stable")
                index = np.concatenate([index, hidden])[order]
                x, y = np.concatenate([x, hx])[order], np.concatenate([y, hy])[order]
                part = index // (padded.shape[1] * padded.shape[2])
                counts = np.bincount(part, minlength=num_parts)
        value = padded.reshape(-1)[index].astype(np.float64)
        cand = paf_score_graph(paf, topo.links, counts, x, y, prm.num_samples,
                               prm.sample_threshold, prm.min_sample_fraction, prm.link_threshold,
                               prm.paf_floor, prm.end_weight)
        if cand is None:  # a sampled cell of paf is NaN/Inf
            raise _non_finite("paf", paf)
        chosen = assignment(cand, index.size)
        if prm.length_weight > 0.0:  # again, with weights from the limb lengths of a first assembly
            weights = length_weights(cand, chosen, connect_parts(part, cand, chosen), x, y, num_links,
                                     prm.length_weight, prm.length_tolerance)
            chosen = assignment(dataclasses.replace(cand, score=weights), index.size, (chosen, cand.score))
        group = connect_parts(part, cand, chosen)

        # per group: keypoints, links joining two of its keypoints, score
        num_groups = int(group.max()) + 1
        link_group = group[cand.a]
        joined = link_group == group[cand.b]
        link_group = link_group[joined]
        size = np.bincount(group, minlength=num_groups)
        total = (np.bincount(group, weights=value, minlength=num_groups)
                 + np.bincount(link_group, weights=cand.score[joined], minlength=num_groups))
        score = total / (size + np.bincount(link_group, minlength=num_groups))
        kept = np.flatnonzero((size >= prm.min_parts) & (score >= prm.min_score))
        kept = kept[np.argsort(-score[kept], kind="stable")[:prm.max_people]]
        row = np.full(num_groups + 1, -1, dtype=np.int64)  # row of each group in the output, -1: dropped
        row[kept] = np.arange(kept.size)
        keypoints = np.zeros((kept.size + 1, num_parts, 3))  # dropped groups write to the last row
        keypoints[:, :, :2] = np.nan
        where = row[group], part
        keypoints[where + (0,)], keypoints[where + (1,)], keypoints[where + (2,)] = x, y, value
        links = np.zeros((kept.size + 1, num_links), dtype=bool)
        links[row[link_group], cand.link[joined]] = True
        keypoints, links = keypoints[:-1], links[:-1]
        return Poses(keypoints, score[kept], links)


class PoseDecoder:
    """The pose :class:`~trt_perception.core.decode.Decoder`: outputs of one image -> skeletons in
    source-image pixels.
    """

    roles: tuple[str, ...] = ("cmap", "paf")

    def __init__(self, topology: Topology = COCO18, params: PoseParams = PoseParams()) -> None:
        self._parser = PoseParser(topology, params)

    @property
    def topology(self) -> Topology:
        """The model's keypoint names and PAF links (from its model config)."""
        return self._parser.topology

    @classmethod
    def from_config(cls, config: ModelConfig) -> "PoseDecoder":
        """From a model config: ``outputs`` names both roles; the ``decoder`` section holds
        :class:`PoseParams` fields and optionally ``topology`` (a trt_pose topology JSON path,
        relative to the YAML file; COCO 18 parts when absent).
        """
        where = str(config.source) if config.source else "model config"
        missing = [role for role in cls.roles if role not in config.outputs]
        if missing:
            raise ModelConfigError(f"{where}: the pose decoder needs outputs {list(cls.roles)}; "
                                   f"missing {missing}")
        options = dict(config.decoder)
        topology = COCO18
        if "topology" in options:
            base = config.source.parent if config.source else config.model_path.parent
            try:
                topology = load_topology(base / str(options.pop("topology")))
            except ValueError as exc:
                raise ModelConfigError(f"{where}: decoder: {exc}") from exc
        try:
            return cls(topology, PoseParams.from_dict(options))
        except (TypeError, ValueError) as exc:
            raise ModelConfigError(f"{where}: decoder: {exc}") from exc

    def __call__(self, outputs: Mapping[str, np.ndarray], geometry: ResizeGeometry) -> list[Skeleton]:
        """``outputs["cmap"]``: float[1, C, H, W], ``outputs["paf"]``: float[1, 2L, H, W] -> skeletons
        with keypoints in source-image pixels, highest score first.
        """
        fields = []
        for role in self.roles:
            array = outputs.get(role)
            if array is None:
                raise PoseFieldError(f"missing output {role!r} (got {sorted(outputs)})")
            if array.ndim != 4 or array.shape[0] != 1:
                raise PoseFieldError(f"{role} must have shape [1, channels, H, W], got {list(array.shape)}")
            fields.append(array[0])
        poses = self._parser(*fields)
        _, height, width = fields[0].shape
        keypoints = poses.keypoints.copy()
        x, y = geometry.to_source(keypoints[:, :, 0] * (geometry.dst_w / width),
                                  keypoints[:, :, 1] * (geometry.dst_h / height))
        keypoints[:, :, 0], keypoints[:, :, 1] = x, y
        return dataclasses.replace(poses, keypoints=keypoints).skeletons(self.topology)

    def runtime_params(self) -> dict[str, Any]:
        """Current values of the parameters :meth:`set_params` accepts (:data:`POSE_PARAMS`)."""
        return {name: getattr(self._parser.params, name) for name in RUNTIME}

    def set_params(self, params: Mapping[str, Any]) -> None:
        """Change runtime parameters; ValueError (and nothing changed) when any is unknown or invalid."""
        fixed = set(params) - set(RUNTIME)
        if fixed:
            raise ValueError(f"pose decoder parameters {sorted(fixed)} cannot change at runtime; "
                             f"runtime parameters: {list(RUNTIME)}")
        self._parser.params = dataclasses.replace(self._parser.params, **dict(params))

    @property
    def params(self) -> PoseParams:
        """The parser's current decoding thresholds."""
        return self._parser.params
