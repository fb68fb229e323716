"""Sensitivity sweep results as a Markdown table, JSON and a PNG bar chart (drawn with OpenCV).

The chart has one horizontal bar per layer group, most sensitive on top: the length is the
group's ``1 - F1`` of detections vs FP32 when it alone is INT8 (or the normalized output error
for a model without detections); groups kept in float by the selection are drawn in orange.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union

import cv2
import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_bytes
from trt_perception.core.precision.sensitivity import GroupSensitivity, Selection

PathLike = Union[str, Path]


def _detections(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("detections") or {}


def sensitivity_table(ranking: Sequence[GroupSensitivity], selection: Selection | None = None) -> str:
    """Markdown table: rank, group, nodes, convs, recall/precision/mean IoU with only that group
    INT8, output error, and whether the selection keeps it in float.
    """
    kept = set(selection.float_groups) if selection is not None else set()
    lines = ["| rank | group | nodes | convs | recall | precision | mean IoU | output error | kept in float |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for rank, g in enumerate(ranking, 1):
        d = _detections(g.summary)
        lines.append(f"| {rank} | `{g.group}` | {len(g.nodes)} | {g.convs} | {d.get('recall', float('nan')):.3f} | "
                     f"{d.get('precision', float('nan')):.3f} | {d.get('mean_iou', float('nan')):.3f} | "
                     f"{g.summary['output_error']:.4f} | {'yes' if g.group in kept else ''} |")
    return "\n".join(lines)


def selection_table(selection: Selection) -> str:
    """Markdown table of the selection's steps (each an evaluated mixed model)."""
    lines = ["| step | groups in float | nodes in float | INT8 convs | recall | precision | mean IoU | output error "
             "| target met |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for step in selection.steps:
        d, s = _detections(step.summary), step.summary
        lines.append(f"| {step.action} | {len(step.float_groups)} | {len(step.float_nodes)} | "
                     f"{s.get('int8_convs', '?')}/{s.get('convs', '?')} | "
                     f"{d.get('recall', float('nan')):.3f} | {d.get('precision', float('nan')):.3f} | "
                     f"{d.get('mean_iou', float('nan')):.3f} | {s['output_error']:.4f} | "
                     f"{'yes' if step.met else 'no'} |")
    return "\n".join(lines)


def selection_json(selection: Selection) -> dict[str, Any]:
    """The selection as plain JSON values: float groups and nodes, whether reached, every step."""
    return {"float_groups": list(selection.float_groups), "float_nodes": list(selection.float_nodes),
            "reached": selection.reached,
            "steps": [{"action": s.action, "float_groups": list(s.float_groups), "float_nodes": list(s.float_nodes),
                       "met": s.met,
                       "summary": s.summary} for s in selection.steps]}


def sensitivity_json(ranking: Sequence[GroupSensitivity], selection: Selection | None = None) -> dict[str, Any]:
    """The ranking (group, nodes, convs, loss, summary) and the selection as plain JSON values."""
    return {"ranking": [{"group": g.group, "nodes": list(g.nodes), "convs": g.convs, "loss": list(g.loss),
                         "summary": g.summary} for g in ranking],
            "selection": None if selection is None else selection_json(selection)}


def sensitivity_chart(ranking: Sequence[GroupSensitivity], path: PathLike, selection: Selection | None = None,
                      top: int = 30) -> None:
    """Write the bar chart (see the module docstring) of the ``top`` most sensitive groups as PNG."""
    rows = list(ranking)[:top]
    uses_detections = any(g.summary.get("detections") for g in rows)
    values = [g.loss[0] if uses_detections else g.loss[1] for g in rows]
    label = "1 - F1 of detections vs FP32 (only this group INT8)" if uses_detections else \
        "normalized output error (only this group INT8)"
    kept = set(selection.float_groups) if selection is not None else set()
    row_h, left, right, top_margin = 22, 430, 40, 50
    width, height = 1100, top_margin + row_h * max(len(rows), 1) + 40
    image = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, label, (10, 28), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    peak = max(max(values, default=0.0), 1e-12)
    for i, (g, value) in enumerate(zip(rows, values)):
        y = top_margin + i * row_h
        name = g.group if len(g.group) <= 52 else "..." + g.group[-49:]
        cv2.putText(image, name, (10, y + 15), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        length = int((width - left - right - 70) * value / peak)
        color = (0, 140, 255) if g.group in kept else (180, 110, 40)
        cv2.rectangle(image, (left, y + 3), (left + max(length, 1), y + row_h - 3), color, -1)
        cv2.putText(image, f"{value:.4f}", (left + length + 5, y + 15), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    if kept:
        cv2.putText(image, "orange: kept in float by the selection", (10, height - 12), font, 0.45,
                    (0, 100, 200), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ValueError("OpenCV could not encode the chart as PNG")
    atomic_write_bytes(Path(path), png.tobytes())
