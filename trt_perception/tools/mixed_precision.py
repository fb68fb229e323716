"""``trt-perception quantize --target-recall R``: mixed INT8, sensitive layer groups kept in float.

The flags and the flow the ``quantize`` command runs when a target is given: a sensitivity
sweep over layer groups on held-out frames (:mod:`trt_perception.core.precision.sensitivity`,
results cached), the selection of the groups kept in float, then the mixed Q/DQ ONNX
(``--output``), its layer precision file (``OUTPUT`` with ``.layers.json``: the float nodes as
``fp16`` for ``build-engine --layer-precision``; edit to ``fp32`` if wanted) and, with
``--report PREFIX``, ``PREFIX.md``, ``PREFIX.json`` and ``PREFIX.png`` (bar chart).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.model_config import ModelConfig
from trt_perception.core.precision.model_frames import detection_decoder, read_frames
from trt_perception.core.precision.result_cache import ResultCache
from trt_perception.core.precision.sensitivity import (
    DEFAULT_CANDIDATES,
    DEFAULT_GROUP_DEPTH,
    SELECT_BY,
    EvalSet,
    SensitivitySweep,
    Target,
    int8_conv_share,
    layer_groups,
    onnx_runner,
)
from trt_perception.core.precision.sensitivity_report import (
    selection_table,
    sensitivity_chart,
    sensitivity_json,
    sensitivity_table,
)
from trt_perception.core.tensorrt.layer_precision import write_layer_precisions
from trt_perception.tools.frame_arguments import add_cache_dir_argument, add_frame_arguments, frame_set


def add_mixed_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mixed-precision options (``--target-recall``, the sensitivity sweep's) to ``quantize``'s ``parser``."""
    group = parser.add_argument_group("mixed precision (INT8 sensitivity; all optional)")
    group.add_argument("--target-recall", type=float, metavar="R",
                       help="keep the most INT8-sensitive layer groups in float until recall vs FP32 >= R")
    group.add_argument("--target-precision", type=float, metavar="P",
                       help="and precision vs FP32 >= P (default: the target recall)")
    add_frame_arguments(group, "select", flag="--select-frames", prefix="select-", max_frames=40,
                        help_text="held-out frames the sensitivity is measured on (not the calibration frames; "
                                  "each variant runs on every one)")
    group.add_argument("--group-depth", type=int, default=DEFAULT_GROUP_DEPTH, metavar="D",
                       help=f"layer group = first D '/'-parts of node names; 0 = every node alone "
                            f"(default {DEFAULT_GROUP_DEPTH})")
    group.add_argument("--max-float-share", type=float, default=0.2, metavar="S",
                       help="at most this share of the convolutions in float (default 0.2)")
    group.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, metavar="K",
                       help=f"groups re-measured at each selection step, the best kept (default {DEFAULT_CANDIDATES}; "
                            "1 = ranking order)")
    group.add_argument("--select-by", choices=SELECT_BY, default="margin",
                       help="each step keeps the candidate with the best margin to the targets (default) or the "
                            "lowest output error")
    group.add_argument("--whole-groups", dest="refine_nodes", action="store_false",
                       help="keep whole groups in float (default: then return single nodes to INT8 where the "
                            "target still holds)")
    group.add_argument("--report", metavar="PREFIX", help="write PREFIX.md, PREFIX.json and PREFIX.png")
    add_cache_dir_argument(group, "calibration ranges and sweep results")


def check_mixed_arguments(args: argparse.Namespace) -> None:
    """ValueError for inconsistent mixed-precision flags."""
    if args.target_recall is None:
        if args.select or args.target_precision is not None or args.report:
            raise ValueError("--select-frames, --target-precision and --report go with --target-recall")
        return
    targets = (args.target_recall, args.target_precision if args.target_precision is not None else args.target_recall)
    if not all(0 < t <= 1 for t in targets):
        raise ValueError(f"targets must be in (0, 1], got {targets}")
    if not args.select:
        raise ValueError("--target-recall needs --select-frames (held-out frames to measure sensitivity on)")
    if not 0 <= args.max_float_share < 1 or args.group_depth < 0 or args.candidates < 1:
        raise ValueError("--max-float-share must be in [0, 1), --group-depth >= 0 and --candidates >= 1")


def run_mixed(args: argparse.Namespace, config: ModelConfig, calibration: Sequence[np.ndarray]) -> dict[str, Any]:
    """Sweep, select, write the mixed model and its files; returns a summary for printing."""
    select = frame_set(args, "select")
    frames, geometries = read_frames(config, select.sources, select.every, select.max_frames)
    fp32 = onnx_runner(config.model_path, config.input_name)
    evalset = EvalSet(config.input_name, frames, [fp32(t) for t in frames], detection_decoder(config, geometries))
    target = Target(recall=args.target_recall,
                    precision=args.target_precision if args.target_precision is not None else args.target_recall)
    groups = layer_groups(config.model_path, op_types=args.op_types, depth=args.group_depth)
    with SensitivitySweep(config.model_path, calibration, evalset, method=args.method, percentile=args.percentile,
                          op_types=args.op_types, bias_correction=args.bias_correction,
                          weight_rounding=args.weight_rounding, centred_inputs=args.centred_inputs,
                          cache=ResultCache(args.cache_dir),
                          progress=lambda items, **kw: tqdm(items, disable=None, **kw)) as sweep:
        ranking = sweep.measure(groups)
        convs = sum(g.convs for g in ranking)
        selection = sweep.select(ranking, target, max_float_convs=int(args.max_float_share * convs),
                                 candidates=args.candidates, refine_nodes=args.refine_nodes, by=args.select_by)
        output = Path(args.output)
        report = sweep.quantize(output, exclude=selection.float_nodes)
    layers_file = output.with_suffix(".layers.json")
    reasons = {node: f"INT8-sensitive group {g.group} (rank {rank})"
               for rank, g in enumerate(ranking, 1) for node in g.nodes if node in selection.float_nodes}
    write_layer_precisions(layers_file, output.name, dict.fromkeys(selection.float_nodes, "fp16"), reasons)
    if args.report:
        prefix = Path(args.report)
        sensitivity_chart(ranking, prefix.with_suffix(".png"), selection)
        atomic_write_text(prefix.with_suffix(".json"),
                          json.dumps(sensitivity_json(ranking, selection), indent=1) + "\n")
        atomic_write_text(prefix.with_suffix(".md"), "\n\n".join([
            f"# INT8 sensitivity of {config.model_path.name}", selection_table(selection),
            f"![sensitivity]({prefix.with_suffix('.png').name})", sensitivity_table(ranking, selection)]) + "\n")
    int8_convs, all_convs = int8_conv_share(output)
    return {"report": report, "selection": selection, "layers_file": layers_file,
            "int8_convs": int8_convs, "convs": all_convs, "final": selection.final.summary}
