"""Tracker: one camera's detections, frame after frame -> the same detections with track ids.

ByteTrack's method (Zhang et al. 2022) in image pixels, timed by the frames' stamps:

* every track has a constant-velocity Kalman state (:mod:`.kalman`), predicted to each frame's
  stamp, so frame gaps and dropped frames are predicted over their true duration;
* detections are matched to tracks in stages (:mod:`.association`): high-score detections first,
  then low-score ones to keep tracks alive through partial occlusion, then unconfirmed tracks; a
  pair needs the stage's least IoU and the same class; with ``motion_gate`` it must also lie
  within the track's 95 % Kalman gate, and the pairs are chosen by least Gaussian negative
  log-likelihood (Mahalanobis distance plus the prediction's uncertainty, which keeps a long-lost
  track's wide gate from taking a tracked pedestrian's detection) instead of greatest IoU;
* an unmatched detection scoring at least ``new_track_threshold`` and ``high_threshold`` starts an
  unconfirmed track; it is confirmed, and takes the next id of this tracker's counter ("1", "2",
  ...), on its ``min_hits``-th matched frame in a row; an unconfirmed track missed once is dropped;
* a confirmed track without detections is kept (lost, still predicted and matched in the first
  two stages) for ``max_lost`` seconds after its last detection, then dropped; a re-found track keeps
  its id.

What :meth:`Tracker.update` returns: the frame's detections in their order (boxes as detected, not
smoothed), each with ``ids[k]`` = its confirmed track's id or "" (an unconfirmed track, or no
track). Detections scoring below ``high_threshold`` are returned only when they continue a track
(ByteTrack drops the others: they are below the confidence a new object needs).

Stamps (int nanoseconds; any clock, only differences count):

* later than the last frame: the normal case, predicted over the difference;
* equal to or earlier than the last frame by at most ``max_lost``: a duplicate or out-of-order
  frame; its detections get the ids of the tracks they match, and the tracker's state is left
  unchanged (counted in ``stats.stale_frames``);
* earlier by more than ``max_lost`` (a bag played again, a clock reset): the tracks are dropped and
  tracking starts again at this frame (counted in ``stats.time_jumps``); the id counter goes on,
  so an id never names two objects;
* a gap longer than ``max_lost`` drops every track by the rule above.

A camera without stamps (all 0) gets no ids: every frame after the first is a duplicate.

Two implementations of one frame, with the same results: the numpy modules (the reference) and
one numba-compiled call (:mod:`.kernels`, several times faster), used once :mod:`.compiled` has
loaded it in the background (the first update of a process starts that).

:meth:`set_params` may be called from another thread while :meth:`update` runs: the parameters are
one immutable object replaced in one assignment, and each update reads it once. :meth:`update` and
:meth:`reset` belong to one thread. Results are a deterministic function of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

import trt_perception.core.tracking.compiled as compiled
import trt_perception.core.tracking.kalman as kalman
from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.tracking.association import associate
from trt_perception.core.tracking.params import TrackerParams


@dataclass
class TrackerStats:
    """Counts since the last :meth:`Tracker.reset`."""

    frames: int = 0            #: calls of update
    stale_frames: int = 0      #: frames with a stamp not after the last one (state unchanged)
    time_jumps: int = 0        #: stamps far before the last one (tracks dropped)
    confirmed: int = 0         #: tracks confirmed = ids given
    dropped_low: int = 0       #: low-score detections not published (they continued no track)


class Tracker:
    """Multi-object tracker of one camera (see the module docstring).

    Tracks are kept as parallel arrays in order of birth: ``_mean`` float64[N, 8] and ``_cov``
    float64[N, 4, 3] (:mod:`.kalman`), ``_id`` int64[N] (0: unconfirmed), ``_hits`` int64[N]
    (matched frames in a row while unconfirmed), ``_last_seen`` int64[N] (stamp of the last
    detection, ns), ``_class`` int64[N].
    """

    def __init__(self, params: Optional[TrackerParams] = None, use_compiled: bool = True) -> None:
        """``use_compiled``: run the compiled step once it is loaded (:mod:`.compiled`; the same
        results); False: always the numpy path (the reference).
        """
        self.params = params if params is not None else TrackerParams()
        self._use_compiled = use_compiled
        self._next_id = 1
        self._stamp: Optional[int] = None
        self.stats = TrackerStats()
        self._packed_for: Optional[tuple[TrackerParams, np.dtype]] = None
        self._packed: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0, np.int64))
        self._clear_tracks()

    # parameters ------------------------------------------------------------------------------

    def set_params(self, values: Mapping[str, Any]) -> None:
        """Change parameters by name; on an unknown name or invalid value raise ValueError and
        change nothing.
        """
        self.params = self.params.replaced(values)

    def runtime_params(self) -> dict[str, Any]:
        """The parameters in effect, by name."""
        return self.params.as_dict()

    # state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every track, the last stamp and the statistics; ids start again at "1"."""
        self._next_id = 1
        self._stamp = None
        self.stats = TrackerStats()
        self._clear_tracks()

    def _clear_tracks(self) -> None:
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 4, 3))
        self._id = np.zeros(0, np.int64)
        self._hits = np.zeros(0, np.int64)
        self._last_seen = np.zeros(0, np.int64)
        self._class = np.zeros(0, np.int64)

    @property
    def track_count(self) -> int:
        """Tracks held now, confirmed (tracked or lost) and unconfirmed."""
        return len(self._id)

    @property
    def confirmed_count(self) -> int:
        """Confirmed tracks held now (tracked or lost; those with an id)."""
        return int(np.count_nonzero(self._id))

    # one frame ---------------------------------------------------------------------------------

    def update(self, dets: Detections, stamp_ns: int) -> Detections:
        """Track one frame's detections taken at ``stamp_ns``; returns them with ids (module doc)."""
        p = self.params
        stamp_ns = int(stamp_ns)
        self.stats.frames += 1
        kernels = compiled.kernels() if self._use_compiled else None
        if self._stamp is not None and stamp_ns <= self._stamp:
            if self._stamp - stamp_ns <= p.max_lost * 1e9:
                self.stats.stale_frames += 1
                if kernels is None:
                    owner = self._associate(p, dets, kalman.xyxy_to_cxcywh(dets.boxes_xyxy))
                else:
                    owner = kernels.associate(self._mean, self._cov, self._id, self._class,
                                              *self._compiled_args(p, dets))
                return self._publish(dets, *self._published(dets, owner, p))
            self.stats.time_jumps += 1
            self._clear_tracks()
        last_stamp, self._stamp = self._stamp, stamp_ns
        dt = 0.0 if last_stamp is None else (stamp_ns - last_stamp) / 1e9
        if kernels is None:
            return self._publish(dets, *self._published(dets, self._step(p, dets, stamp_ns, dt), p))
        boxes, scores, class_ids, fparams, iparams = self._compiled_args(p, dets)
        (track_ids, keep, self._mean, self._cov, self._id, self._hits, self._last_seen, self._class, self._next_id,
         confirmed) = kernels.step(self._mean, self._cov, self._id, self._hits, self._last_seen, self._class,
                                   self._next_id, boxes, scores, class_ids, stamp_ns, dt, dt * dt, dt ** 3 / 2.0,
                                   dt ** 4 / 4.0, fparams, iparams)
        self.stats.confirmed += confirmed
        return self._publish(dets, track_ids, keep)

    def _compiled_args(self, p: TrackerParams,
                       dets: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The detections and parameters as :mod:`.kernels` takes them (packed parameters cached)."""
        if self._packed_for is None or self._packed_for[0] is not p or self._packed_for[1] != dets.scores.dtype:
            self._packed = compiled.pack_params(p, dets.scores.dtype)
            self._packed_for = (p, dets.scores.dtype)
        return (np.ascontiguousarray(dets.boxes_xyxy, np.float64), np.ascontiguousarray(dets.scores, np.float64),
                np.ascontiguousarray(dets.class_ids, np.int64), *self._packed)

    def _step(self, p: TrackerParams, dets: Detections, stamp_ns: int, dt: float) -> np.ndarray:
        """The numpy path of one frame after the last: predict by ``dt`` s, associate, correct, drop,
        give birth, confirm; returns each detection's track index (int[K], -1: none).
        """
        measured = kalman.xyxy_to_cxcywh(dets.boxes_xyxy)
        kalman.predict(self._mean, self._cov, dt)
        owner = self._associate(p, dets, measured)
        matched = owner >= 0
        rows = owner[matched]
        kalman.update(self._mean, self._cov, rows, measured[matched])
        hit = np.zeros(len(self._id), bool)
        hit[rows] = True
        self._hits = np.where(hit, self._hits + 1, 0)
        self._last_seen[rows] = stamp_ns
        keep = np.where(self._id > 0, stamp_ns - self._last_seen <= p.max_lost * 1e9, hit)
        if not keep.all():
            owner[matched] = (np.cumsum(keep) - 1)[rows]      # matched tracks are always kept
            self._select(keep)
        born = ~matched & (dets.scores >= max(p.new_track_threshold, p.high_threshold))
        if born.any():
            owner[born] = len(self._id) + np.arange(np.count_nonzero(born))
            self._add(measured[born], dets.class_ids[born], stamp_ns)
        self._confirm(p.min_hits)
        return owner

    def _associate(self, p: TrackerParams, dets: Detections, measured: np.ndarray) -> np.ndarray:
        """The track index of each detection (int[K], -1: none) against the current states."""
        if len(self._id) == 0 or len(dets) == 0:
            return np.full(len(dets), -1, np.intp)
        allowed = self._class[:, None] == dets.class_ids[None, :]
        cost = None
        if p.motion_gate:            # negative log-likelihood, the uncertainty term bounded: cost in [0, 1]
            chi2 = kalman.CHI2_95_4DOF
            distances = kalman.gate_distances(self._mean, self._cov, measured)
            allowed &= distances <= chi2
            uncertainty = np.minimum(kalman.log_uncertainty(self._mean, self._cov), chi2)
            cost = (distances + uncertainty[:, None]) / (2.0 * chi2)
        return associate(kalman.boxes_xyxy(self._mean), self._id > 0, dets.boxes_xyxy,
                         dets.scores, allowed, cost, p.high_threshold, p.low_threshold, p.match_iou,
                         p.low_match_iou, p.tentative_match_iou)

    def _select(self, keep: np.ndarray) -> None:
        self._mean, self._cov = self._mean[keep], self._cov[keep]
        self._id, self._hits, self._class = self._id[keep], self._hits[keep], self._class[keep]
        self._last_seen = self._last_seen[keep]

    def _add(self, measured: np.ndarray, class_ids: np.ndarray, stamp_ns: int) -> None:
        """Unconfirmed tracks at measured boxes float[B, 4] (cx, cy, w, h), matched once."""
        mean, cov = kalman.initiate(measured)
        count = len(mean)
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._id = np.concatenate([self._id, np.zeros(count, np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(count, np.int64)])
        self._last_seen = np.concatenate([self._last_seen, np.full(count, stamp_ns, np.int64)])
        self._class = np.concatenate([self._class, class_ids.astype(np.int64)])

    def _confirm(self, min_hits: int) -> None:
        """Give ids, in track order, to unconfirmed tracks with ``min_hits`` hits."""
        ready = np.flatnonzero((self._id == 0) & (self._hits >= min_hits))
        if ready.size:
            self._id[ready] = self._next_id + np.arange(ready.size)
            self._next_id += int(ready.size)
            self.stats.confirmed += int(ready.size)

    def _published(self, dets: Detections, owner: np.ndarray, p: TrackerParams) -> tuple[np.ndarray, np.ndarray]:
        """(the id of each detection's track, int[K], 0: none or unconfirmed; the detections to
        publish, bool[K]: low-score detections of no track are left out, module docstring).
        """
        track_ids = np.where(owner >= 0, self._id[np.maximum(owner, 0)] if len(self._id) else 0, 0)
        return track_ids, (dets.scores >= p.high_threshold) | (owner >= 0)

    def _publish(self, dets: Detections, track_ids: np.ndarray, keep: np.ndarray) -> Detections:
        """``dets`` where ``keep``, with ids ``track_ids`` (:meth:`_published`)."""
        ids = [str(i) if i else "" for i in track_ids[keep].tolist()]
        if keep.all():
            return Detections(dets.boxes_xyxy, dets.scores, dets.class_ids, dets.labels, ids)
        self.stats.dropped_low += int(np.count_nonzero(~keep))
        index = np.flatnonzero(keep)
        return Detections(dets.boxes_xyxy[index], dets.scores[index], dets.class_ids[index],
                          [dets.labels[i] for i in index.tolist()], ids)
