"""MSE activation calibration: the symmetric INT8 range that minimizes the quantization error.

For one activation tensor, the calibration frames give a histogram of its *absolute* values
(ONNX Runtime's histogram collector with ``symmetric``: 2048 bins over ``[0, max]``, widened
with bins of the same width when a later frame goes further). A candidate clip value ``t`` (the
upper edge of bin ``i``, ``i >= start_bin``) means the scale ``s = t / 127`` (symmetric INT8,
zero point 0: TensorRT's Q/DQ) and the quantized value ``clip(round(x / s), -127, 127) * s``;
its error is the mean squared difference over the histogram, each bin represented by its centre
(the method of NVIDIA's pytorch-quantization / ModelOpt ``mse`` calibrator). The chosen ``t`` is
the candidate with the smallest error: large enough that few values are clipped, small enough
that the common values keep resolution. A global percentile instead clips every tensor at the
same share of values, whatever its shape.

The result is a plain range ``(-t, t)`` per tensor, written into the Q/DQ ONNX as the
QuantizeLinear scale ``t / 127``; TensorRT runs it as any explicitly quantized model (no
calibrator at build time).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

#: symmetric INT8: the levels on each side of zero (TensorRT's Q/DQ: [-127, 127], zero point 0)
LEVELS = 127
#: smallest candidate bin index (pytorch-quantization's default): t >= 128/2048 of the range
DEFAULT_START_BIN = 128


def quantization_mse(hist: np.ndarray, edges: np.ndarray, threshold: float, levels: int = LEVELS) -> float:
    """Mean squared error of quantizing a histogram of absolute values (``hist[i]`` values in
    ``[edges[i], edges[i + 1])``, each taken as the bin centre) to ``levels`` steps of
    ``threshold / levels`` with values above ``threshold`` clipped to it.
    """
    counts = np.asarray(hist, np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    return float(_errors(counts, _centres(edges), np.array([threshold], np.float64), levels)[0] / total)


def mse_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = LEVELS,
                  start_bin: int = DEFAULT_START_BIN) -> float:
    """The clip value (an upper bin edge, ``edges[i + 1]`` for ``i >= start_bin`` or the last
    edge when there are fewer bins) whose :func:`quantization_mse` is smallest; ties go to the
    smaller value. ``hist``: counts of absolute values, ``edges``: ``len(hist) + 1`` increasing
    bin edges from 0. An empty histogram gives its last edge.
    """
    counts = np.asarray(hist, np.float64)
    edges = np.asarray(edges, np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"need 1-D counts and len(counts) + 1 edges, got {counts.shape} and {edges.shape}")
    candidates = edges[1 + min(start_bin, counts.size - 1):]
    candidates = candidates[candidates > 0]
    if counts.sum() <= 0 or candidates.size == 0:
        return float(edges[-1])
    errors = _errors(counts, _centres(edges), candidates, levels)
    return float(candidates[int(np.argmin(errors))])


def mse_ranges(histograms: Mapping[str, tuple[np.ndarray, np.ndarray]], levels: int = LEVELS,
               start_bin: int = DEFAULT_START_BIN) -> dict[str, float]:
    """Tensor name -> :func:`mse_threshold` of its ``(counts, edges)`` histogram of absolute values."""
    return {name: mse_threshold(hist, edges, levels, start_bin) for name, (hist, edges) in histograms.items()}


def _errors(counts: np.ndarray, centres: np.ndarray, thresholds: np.ndarray, levels: int) -> np.ndarray:
    """Summed squared quantization error of the histogram for each threshold (> 0; 0 gives the
    error of quantizing everything to 0).
    """
    errors = np.empty(thresholds.size)
    for begin in range(0, thresholds.size, 256):  # (thresholds x bins) in blocks: bounded memory
        scales = np.maximum(thresholds[begin:begin + 256, None], np.finfo(np.float64).tiny) / levels
        quantized = np.clip(np.round(centres[None, :] / scales), 0, levels) * scales
        errors[begin:begin + 256] = ((centres[None, :] - quantized) ** 2) @ counts
    return errors


def _centres(edges: np.ndarray) -> np.ndarray:
    values: np.ndarray = np.asarray(edges, np.float64)
    centres: np.ndarray = (values[:-1] + values[1:]) / 2
    return centres
