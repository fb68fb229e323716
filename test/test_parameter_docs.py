"""The README parameter tables say what the declarations say.

Every node parameter is declared once, as a :class:`~trt_perception.core.param_spec.ParamSpec` row
(the nodes' ``COMMON_PARAMS``, ``TASK_PARAMS`` and ``MULTI_CAMERA_PARAMS``, the decoders'
``SSD_PARAMS`` and ``POSE_PARAMS``).
This fails when a README table row disagrees with its row (unknown name, other default, range or
choices) or a parameter has no row. ``config/*.yaml`` are checked against the nodes' declarations
by ``test/ros/test_shared_node.py`` (every parameter with its default, no decoder threshold set).
"""

from __future__ import annotations

import re
from pathlib import Path

from trt_perception.core.decode.pose import POSE_PARAMS
from trt_perception.core.decode.ssd.decoder import SSD_PARAMS
from trt_perception.core.param_spec import ParamSpec
from trt_perception.ros.detector_node import TRACK_PARAMS
from trt_perception.ros.multi_camera_node import MULTI_CAMERA_PARAMS
from trt_perception.ros.perception_task import TASK_PARAMS
from trt_perception.ros.task_node import COMMON_PARAMS

ROOT = Path(__file__).resolve().parents[1]
ALL_SPECS = {spec.name: spec for spec in COMMON_PARAMS + TASK_PARAMS + SSD_PARAMS + TRACK_PARAMS + POSE_PARAMS
             + MULTI_CAMERA_PARAMS}


def readme_rows() -> list[list[str]]:
    """Rows of the README's parameter tables (first cell a backticked name, five cells)."""
    rows = []
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[\w.]+`( \(runtime\))?", cells[0]) and cells[1] in (
                "int", "double", "bool", "string", "string[]"):
            rows.append(cells)
    return rows


def shown_default(spec: ParamSpec) -> str:
    value = spec.default
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = f"`{value}`" if value else '`""`'
    elif isinstance(value, list):
        text = "all" if not value else ", ".join(map(str, value))
    else:
        text = repr(value)
    return f"model ({text})" if spec.from_model else text


def row_problems(cells: list[str]) -> list[str]:
    name = cells[0].split()[0].strip("`")
    spec = ALL_SPECS.get(name)
    if spec is None:
        return [f"{name}: not a declared parameter"]
    problems = []
    default = cells[2]
    want = shown_default(spec)
    if isinstance(spec.default, float) and not spec.from_model:
        try:
            ok = float(default.split()[0]) == spec.default
        except ValueError:
            ok = False
    else:
        ok = default == want or default.startswith(want + " ")
    if not ok:
        problems.append(f"{name}: default shown {default!r}, declared {want!r}")
    bounds = spec.int_range or spec.float_range
    if bounds is not None:
        found = re.match(r"([-\d.e]+)\.\.([-\d.e]+)", cells[3].replace("...", "~"))
        if not found or (float(found.group(1)), float(found.group(2))) != tuple(map(float, bounds)):
            problems.append(f"{name}: range shown {cells[3]!r}, declared {bounds}")
    if spec.choices is not None and set(re.findall(r"`([^`]*)`", cells[3])) != set(spec.choices):
        problems.append(f"{name}: values shown {cells[3]!r}, declared {spec.choices}")
    return problems


def test_readme_parameter_tables_match_the_declarations() -> None:
    rows = readme_rows()
    shown = {cells[0].split()[0].strip("`") for cells in rows}
    problems = [problem for cells in rows for problem in row_problems(cells)]
    problems += [f"{name}: not in the README tables" for name in ALL_SPECS if name not in shown]
    assert not problems, "; ".join(problems)


def test_the_readme_check_catches_a_wrong_default_and_range() -> None:
    assert row_problems(["`qos_depth`", "int", "2", "1..100", ""]) == [
        "qos_depth: default shown '2', declared '1'"]
    assert row_problems(["`score_threshold` (runtime)", "double", "0.5", "0..2", ""]) == [
        "score_threshold: default shown '0.5', declared 'model (0.5)'",
        "score_threshold: range shown '0..2', declared (0.0, 1.0)"]
