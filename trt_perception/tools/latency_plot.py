"""A line plot of latency series drawn with OpenCV (no matplotlib), written as PNG.

Each series is a sequence of y values (ms) over x = 0, 1, 2, ... (the frame number); NaN values
are gaps. The y axis runs from 0 to a rounded maximum of the data, with grid lines and labels;
the legend names the series in the order given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence, Union

import cv2
import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_bytes

#: BGR line colours, one per series in order (cycled)
COLOURS = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
           (75, 86, 140), (194, 119, 227), (34, 189, 188))
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0) if step * power >= value)


def draw_plot(series: Mapping[str, Sequence[float]], title: str, x_label: str, y_label: str,
              size: tuple[int, int] = (1000, 560)) -> np.ndarray:
    """uint8[H, W, 3] BGR image (``size`` = (W, H)) of ``series`` (see the module docstring)."""
    width, height = size
    left, right, top, bottom = 70, 20, 40, 110
    image = np.full((height, width, 3), 255, np.uint8)
    data = {name: np.asarray(values, dtype=np.float64) for name, values in series.items()}
    finite = [v[np.isfinite(v)] for v in data.values()]
    y_max = _nice_ceiling(max([float(v.max()) for v in finite if v.size] + [1e-3]))
    x_max = max([len(v) - 1 for v in data.values()] + [1])
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.stack([left + x / x_max * plot_w, top + (1 - y / y_max) * plot_h], axis=-1)

    for i in range(6):   # horizontal grid lines and y labels
        y = y_max * i / 5
        row = int(round(top + (1 - i / 5) * plot_h))
        cv2.line(image, (left, row), (left + plot_w, row), (225, 225, 225), 1)
        cv2.putText(image, f"{y:g}", (5, row + 5), FONT, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    for i in range(6):   # x labels
        column = int(round(left + i / 5 * plot_w))
        cv2.putText(image, f"{x_max * i / 5:.0f}", (column - 10, top + plot_h + 20), FONT, 0.45, (60, 60, 60), 1,
                    cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    for index, values in enumerate(data.values()):
        colour = COLOURS[index % len(COLOURS)]
        present = np.flatnonzero(np.isfinite(values))
        for run in np.split(present, np.flatnonzero(np.diff(present) > 1) + 1) if present.size else []:
            points = np.round(to_px(run.astype(np.float64), values[run])).astype(np.int32)
            if len(run) == 1:
                cv2.circle(image, (int(points[0, 0]), int(points[0, 1])), 2, colour, -1, cv2.LINE_AA)
            else:
                cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
    cv2.putText(image, title, (left, 25), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, x_label, (left + plot_w // 2 - 40, top + plot_h + 42), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, y_label, (5, top - 22), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for index, name in enumerate(data):   # legend in two columns under the plot
        x = left + (index % 2) * (plot_w // 2)
        y = top + plot_h + 62 + (index // 2) * 20
        colour = COLOURS[index % len(COLOURS)]
        cv2.line(image, (x, y - 5), (x + 25, y - 5), colour, 3)
        cv2.putText(image, name, (x + 32, y), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_plot(path: Union[str, Path], series: Mapping[str, Sequence[float]], title: str, x_label: str,
               y_label: str) -> None:
    """Draw ``series`` with :func:`draw_plot` and write the PNG atomically."""
    ok, data = cv2.imencode(".png", draw_plot(series, title, x_label, y_label))
    if not ok:
        raise OSError(f"OpenCV could not encode the plot for {path}")
    atomic_write_bytes(path, data.tobytes())
