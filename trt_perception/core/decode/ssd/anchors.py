"""SSD anchors (default boxes) generated from configuration.

Both generators return ``float32[A, 4]`` anchors ``(cx, cy, w, h)`` normalized to the network input
(x by its width, y by its height; centre of the input = (0.5, 0.5)), not clipped unless asked, in
the order of the model outputs: layer by layer, then row (y), column (x), then anchor shape.

``ssd_anchor_generator`` -- the TensorFlow Object Detection API ``ssd_anchor_generator``
(``MultipleGridAnchorGenerator`` made by ``create_ssd_anchors``): per layer k a scale
``s_k = min_scale + (max_scale - min_scale) * k / (L - 1)`` (or the ``scales`` given), one box per
aspect ratio ``a`` with ``h = s_k / sqrt(a) * base_h``, ``w = s_k * sqrt(a) * base_w``, plus one box
of scale ``sqrt(s_k * s_{k+1})`` (``s_L = 1``) and aspect ``interpolated_scale_aspect_ratio`` when
that is > 0; layer 0 has the three boxes (0.1, 1), (s_0, 2), (s_0, 0.5) when
``reduce_boxes_in_lowest_layer``. Centres ``((j + 0.5) / fw, (i + 0.5) / fh)``. For a non-square
input the base size is scaled by ``min(H, W) / H`` (height) and ``min(H, W) / W`` (width), as TF does.

``prior_boxes`` -- the torchvision ``DefaultBoxGenerator`` / Caffe ``PriorBox`` form: per layer k
the boxes ``(s_k, s_k)``, ``(s'_k, s'_k)`` with ``s'_k = sqrt(s_k * s_{k+1})``, then for each
aspect ratio ``a`` of the layer ``(s_k sqrt(a), s_k / sqrt(a))`` and ``(s_k / sqrt(a), s_k sqrt(a))``
as (w, h). Scales are ``L + 1`` values (given, or ``min_scale .. max_scale`` linearly plus 1.0).
Centres ``((j + offset) * step / W, (i + offset) * step / H)`` with a per-layer ``step`` in input
pixels, or ``((j + offset) / fw, (i + offset) / fh)`` without steps. ``clip`` clamps w and h to
[0, 1] (torchvision). Caffe ``min_size``/``max_size`` in pixels are ``scales = min_sizes / input
size`` with ``max_size_k = min_size_{k+1}``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

GridSize = Union[int, Sequence[int]]
ANCHOR_TYPES = ("ssd_anchor_generator", "prior_box")


def _grid(size: GridSize) -> tuple[int, int]:
    """A feature map size (int for square, or [height, width]) as (height, width)."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ValueError(f"feature map size must be a positive integer or [height, width], got {size!r}")
    return int(pair[0]), int(pair[1])


def _linear_scales(min_scale: float, max_scale: float, layers: int) -> list[float]:
    if layers == 1:
        return [min_scale]
    return [min_scale + (max_scale - min_scale) * k / (layers - 1) for k in range(layers)]


def _tile(grid: tuple[int, int], centre_x: np.ndarray, centre_y: np.ndarray,
          widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """float64[fh * fw * n, 4] (cx, cy, w, h) in (row, column, shape) order."""
    fh, fw = grid
    n = len(widths)
    out = np.empty((fh, fw, n, 4), dtype=np.float64)
    out[..., 0] = centre_x[None, :, None]
    out[..., 1] = centre_y[:, None, None]
    out[..., 2] = widths
    out[..., 3] = heights
    return out.reshape(-1, 4)


def ssd_anchor_generator(feature_map_sizes: Sequence[GridSize], input_size: tuple[int, int],
                         min_scale: float = 0.2, max_scale: float = 0.95,
                         scales: Optional[Sequence[float]] = None,
                         aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3),
                         interpolated_scale_aspect_ratio: float = 1.0,
                         reduce_boxes_in_lowest_layer: bool = True,
                         base_anchor_size: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """TF OD API anchors (module docstring); ``input_size`` = (width, height) of the network input.

    ``base_anchor_size`` is (height, width) as in TF. Returns float32[A, 4] (cx, cy, w, h).
    """
    grids = [_grid(s) for s in feature_map_sizes]
    layer_scales = list(scales) if scales else _linear_scales(min_scale, max_scale, len(grids))
    if len(layer_scales) != len(grids):
        raise ValueError(f"scales has {len(layer_scales)} values for {len(grids)} feature maps")
    layer_scales.append(1.0)
    in_w, in_h = input_size
    base_h = base_anchor_size[0] * min(in_w, in_h) / in_h
    base_w = base_anchor_size[1] * min(in_w, in_h) / in_w
    layers = []
    for k, grid in enumerate(grids):
        if k == 0 and reduce_boxes_in_lowest_layer:
            specs = [(0.1, 1.0), (layer_scales[0], 2.0), (layer_scales[0], 0.5)]
        else:
            specs = [(layer_scales[k], a) for a in aspect_ratios]
            if interpolated_scale_aspect_ratio > 0:
                specs.append((math.sqrt(layer_scales[k] * layer_scales[k + 1]),
                              interpolated_scale_aspect_ratio))
        scale = np.array([s for s, _ in specs])
        root = np.sqrt([a for _, a in specs])
        fh, fw = grid
        layers.append(_tile(grid, (np.arange(fw) + 0.5) / fw, (np.arange(fh) + 0.5) / fh,
                            scale * root * base_w, scale / root * base_h))
    return np.concatenate(layers).astype(np.float32)


def prior_boxes(feature_map_sizes: Sequence[GridSize], input_size: tuple[int, int],
                aspect_ratios: Sequence[Sequence[float]],
                min_scale: float = 0.15, max_scale: float = 0.9,
                scales: Optional[Sequence[float]] = None,
                steps: Optional[Sequence[float]] = None, offset: float = 0.5,
                clip: bool = False) -> np.ndarray:
    """torchvision/Caffe prior boxes (module docstring); ``input_size`` = (width, height).

    ``aspect_ratios[k]`` lists the ratios of layer k besides 1 (each adds a box and its transpose);
    ``scales`` has L + 1 values. Returns float32[A, 4] (cx, cy, w, h).
    """
    grids = [_grid(s) for s in feature_map_sizes]
    layers_n = len(grids)
    if scales:
        layer_scales = list(scales)
    else:
        layer_scales = _linear_scales(min_scale, max_scale, layers_n) + [1.0]
    if len(layer_scales) != layers_n + 1:
        raise ValueError(f"prior_box scales needs {layers_n + 1} values (one per feature map plus "
                         f"the next), got {len(layer_scales)}")
    if len(aspect_ratios) != layers_n:
        raise ValueError(f"aspect_ratios needs one list per feature map ({layers_n}), got {len(aspect_ratios)}")
    if steps is not None and len(steps) != layers_n:
        raise ValueError(f"steps needs one value per feature map ({layers_n}), got {len(steps)}")
    in_w, in_h = input_size
    layers = []
    for k, (fh, fw) in enumerate(grids):
        s_k = layer_scales[k]
        s_prime = math.sqrt(s_k * layer_scales[k + 1])
        wh = [(s_k, s_k), (s_prime, s_prime)]
        for a in aspect_ratios[k]:
            root = math.sqrt(a)
            wh += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
        wh_arr = np.array(wh)
        if clip:
            wh_arr = np.clip(wh_arr, 0.0, 1.0)
        if steps is not None:
            cx = (np.arange(fw) + offset) * steps[k] / in_w
            cy = (np.arange(fh) + offset) * steps[k] / in_h
        else:
            cx = (np.arange(fw) + offset) / fw
            cy = (np.arange(fh) + offset) / fh
        layers.append(_tile((fh, fw), cx, cy, wh_arr[:, 0], wh_arr[:, 1]))
    return np.concatenate(layers).astype(np.float32)


def generate_anchors(section: Mapping[str, Any], input_size: tuple[int, int]) -> np.ndarray:
    """Anchors from a config mapping ``{type: ssd_anchor_generator | prior_box, <its arguments>}``.

    Raises ValueError naming the problem (unknown type or key, bad values).
    """
    options = dict(section)
    kind = options.pop("type", None)
    if kind not in ANCHOR_TYPES:
        raise ValueError(f"anchors.type must be one of {ANCHOR_TYPES}, got {kind!r}")
    if "feature_map_sizes" not in options:
        raise ValueError("anchors.feature_map_sizes is required (the grid size of each output layer)")
    function = ssd_anchor_generator if kind == "ssd_anchor_generator" else prior_boxes
    try:
        return function(input_size=input_size, **options)
    except TypeError as exc:       # unknown or missing keyword
        raise ValueError(f"anchors ({kind}): {exc}") from exc
