"""The compiled pose decoder (:mod:`.kernels`, numba) when it can run, else None: the numpy steps.

numba is imported on the first :func:`load` (not with the package: it takes about half a second), and
its compiled functions are cached on disk (next to the sources, or in numba's user cache
directory, ``NUMBA_CACHE_DIR`` when set, where the package folder is not writable), so only the first
run on a machine compiles (30-90 s; announced by a warning before it starts, when numba's cache index
shows no compiled decoder); later processes load the cache in about 1-2 s.
When numba is not installed, fails to import or to compile, or ``TRT_PERCEPTION_POSE_DECODER=numpy``
is set, :func:`load` returns None and logs why once; the decoder then runs the numpy steps (same
results, several times slower).
"""

from __future__ import annotations

import logging
import math
import os
import time
from types import ModuleType
from typing import Any, Optional, Union

import numpy as np

from trt_perception.core.decode.pose.assignment import BLOCK_ROWS
from trt_perception.core.decode.pose.paf_score_graph import sample_weights

_LOG = logging.getLogger(__name__)
#: environment variable: ``numpy`` forces the numpy steps
ENV_VAR = "TRT_PERCEPTION_POSE_DECODER"

_kernels: Union[ModuleType, bool, None] = None  # None: not tried yet; False: unavailable


def load() -> Optional[ModuleType]:
    """The compiled kernels, compiled (or loaded from the disk cache) on the first call; None when
    unavailable (the reason is logged once, as a warning).
    """
    global _kernels
    if _kernels is None:
        _kernels = False
        if os.environ.get(ENV_VAR, "").lower() == "numpy":
            _LOG.info("pose decoder: numpy steps (%s=numpy)", ENV_VAR)
            return None
        try:
            import trt_perception.core.decode.pose.kernels as kernels
            if not _cached(kernels):  # a warning: python logging's default shows it (ROS nodes included)
                _LOG.warning("compiling the pose decoder (first run on this machine, ~1 min; cached afterwards)")
            started = time.perf_counter()
            _warm_up(kernels)
            _LOG.info("pose decoder: compiled path ready after %.1f s", time.perf_counter() - started)
        except Exception as exc:  # ImportError, numba's errors (no cache locator, LLVM failures)
            _LOG.warning("pose decoder: compiled path unavailable (%s: %s); using the numpy steps, several "
                         "times slower", type(exc).__name__, exc)
            return None
        _kernels = kernels
    return _kernels if isinstance(_kernels, ModuleType) else None


def _cached(kernels: ModuleType) -> bool:
    """Whether numba's disk cache holds :func:`.kernels.parse` compiled from the current sources (its
    cache index, read through numba's private ``_cache`` API; False when it cannot tell).
    """
    try:
        return bool(kernels.parse._cache._cache_file._load_index())
    except Exception:  # another numba version's internals, no cache locator
        return False


def pack_params(params: Any) -> tuple[np.ndarray, ...]:
    """``params`` (a PoseParams) as fparams float64[11], iparams int64[6], t float32[S + 1],
    weight float32[S]: the arguments of
    :func:`.kernels.parse` that come from the parameters (index names in :mod:`.kernels`).
    """
    fparams = np.array([params.peak_threshold, params.noise_factor, params.sigma, params.hidden_margin,
                        params.link_threshold, params.paf_floor, params.sample_threshold,
                        params.min_sample_fraction, params.min_score, params.length_weight,
                        params.length_tolerance], dtype=np.float64)
    iparams = np.array([params.peak_window // 2, params.max_peaks, params.min_parts, params.max_people,
                        math.ceil(params.sigma), BLOCK_ROWS], dtype=np.int64)
    t, weight = sample_weights(params.num_samples, params.end_weight)
    return fparams, iparams, np.ascontiguousarray(t[:, 0]), np.ascontiguousarray(weight[:, 0])


def _warm_up(kernels: ModuleType) -> None:
    """Compiles :func:`.kernels.parse` for the argument types the decoder passes (or loads it from the
    cache) on two crossing limbs of a 2-part, 1-link topology.
    """
    cmap = np.zeros((2, 12, 12), np.float32)
    cmap[0, 3, 3] = cmap[0, 8, 3] = cmap[1, 3, 8] = cmap[1, 8, 8] = 1.0
    paf = np.zeros((2, 12, 12), np.float32)
    paf[1, 3, 3:9] = paf[1, 8, 3:9] = 1.0
    fparams = np.array([0.1, 0.0, 1.5, 0.15, 0.1, 0.5, 0.05, 0.8, 0.0, 0.5, 0.15])
    iparams = np.array([1, 100, 1, 100, 2, BLOCK_ROWS], dtype=np.int64)
    t = ((np.arange(10) + 0.5) / 10).astype(np.float32)
    work = np.full(cmap[0].size, -np.inf, np.float32)
    kernels.parse(cmap, paf, np.array([[0, 1]], dtype=np.int64), fparams, iparams, np.append(t, 0.5).astype(
        np.float32), np.full(10, 0.1, np.float32), work, np.empty(2 * 12 * 6 + 8, np.int64))
