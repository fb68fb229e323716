"""The compiled tracker step (:mod:`.kernels`, numba) once it is ready, else None: the numpy path.

Both paths give the same ids (:mod:`.kernels`), so a tracker may start on the numpy path and move
to the compiled one between two frames without any visible change. This is how the compile is
kept out of the way: the first :func:`kernels` call (the first ``Tracker.update`` of a process)
starts a background thread that imports numba and compiles the kernels, or loads them from
numba's on-disk cache (next to the sources, or numba's user cache directory, ``NUMBA_CACHE_DIR``
when set, where the package folder is not writable). Until it is done, :func:`kernels` returns
None and the tracker runs the numpy path; nothing waits for it. The first compile on a machine
takes 10-30 s of one core, a cache load about a second. When numba is missing, fails, or
``TRT_PERCEPTION_TRACKER=numpy`` is set, the numpy path stays (the reason logged once).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from types import ModuleType
from typing import Optional

import numpy as np

import trt_perception.core.tracking.kalman as kalman
from trt_perception.core.tracking.params import TrackerParams

_LOG = logging.getLogger(__name__)
#: environment variable: ``numpy`` keeps the numpy path
ENV_VAR = "TRT_PERCEPTION_TRACKER"

_lock = threading.Lock()
_thread: Optional[threading.Thread] = None
_kernels: Optional[ModuleType] = None


def kernels(wait: bool = False) -> Optional[ModuleType]:
    """The compiled kernels when ready, else None (see the module docstring); the first call starts
    loading them in the background. ``wait``: block until the loading has ended (benchmarks, tests).
    """
    global _thread
    if _kernels is not None:
        return _kernels
    with _lock:
        if _thread is None:
            if os.environ.get(ENV_VAR, "").lower() == "numpy":
                _LOG.info("tracker: numpy path (%s=numpy)", ENV_VAR)
                _thread = threading.Thread()            # never started: nothing to wait for
                return None
            _thread = threading.Thread(target=_load, name="tracker-compile", daemon=True)
            _thread.start()
        thread = _thread
    if wait and thread.ident is not None:
        thread.join()
    return _kernels


def _load() -> None:
    global _kernels
    started = time.perf_counter()
    try:
        import trt_perception.core.tracking.kernels as module
        _warm_up(module)
    except Exception as exc:  # ImportError, numba's errors (no cache locator, LLVM failures)
        _LOG.warning("tracker: compiled path unavailable (%s: %s); using the numpy path, several times "
                     "slower", type(exc).__name__, exc)
        return
    _LOG.info("tracker: compiled path ready after %.1f s", time.perf_counter() - started)
    _kernels = module


def pack_params(params: TrackerParams, score_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``params`` and the Kalman constants as (fparams float64[F_COUNT], iparams int64[2]) for
    :mod:`.kernels`; score thresholds rounded to ``score_dtype`` (numpy compares a float32 array with
    a Python float in float32).
    """
    from_scores = np.dtype(score_dtype).type if np.issubdtype(score_dtype, np.floating) else float
    fparams = np.zeros(18)
    fparams[:10] = [from_scores(params.high_threshold), from_scores(params.low_threshold),
                    from_scores(max(params.new_track_threshold, params.high_threshold)), params.match_iou,
                    params.low_match_iou, params.tentative_match_iou, params.max_lost * 1e9,
                    kalman.MEASUREMENT_STD, kalman.MIN_SIZE, kalman.CHI2_95_4DOF]
    fparams[10:14] = kalman.AXIS_ACCEL
    fparams[14:18] = kalman.AXIS_INIT_V
    iparams = np.array([params.min_hits, int(params.motion_gate)], np.int64)
    return fparams, iparams


def _warm_up(module: ModuleType) -> None:
    """Compiles (or loads from the cache) :func:`.kernels.step` and :func:`.kernels.associate` for the
    argument types the tracker passes, on two tracks and three detections.
    """
    if module.F_COUNT != 18:
        raise RuntimeError(f"kernels expect {module.F_COUNT} float parameters, pack_params gives 18")
    fparams, iparams = pack_params(TrackerParams(min_hits=1), np.dtype(np.float32))
    boxes = np.array([[10.0, 10.0, 30.0, 60.0], [50.0, 10.0, 70.0, 60.0], [52.0, 12.0, 72.0, 62.0]])
    scores = np.array([0.9, 0.8, 0.3])
    classes = np.ones(3, np.int64)
    state = module.step(np.zeros((0, 8)), np.zeros((0, 4, 3)), *[np.zeros(0, np.int64)] * 4, 1, boxes[:2],
                        scores[:2], classes[:2], 0, 0.0, 0.0, 0.0, 0.0, fparams, iparams)
    mean, cov, ids, hits, seen, cls, next_id = state[2:9]
    module.step(mean, cov, ids, hits, seen, cls, next_id, boxes, scores, classes, 100_000_000, 0.1, 0.01,
                0.0005, 0.000025, fparams, iparams)
    module.associate(mean, cov, ids, cls, boxes, scores, classes, fparams, iparams)
