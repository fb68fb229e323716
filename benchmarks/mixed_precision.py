"""FP32 vs full INT8 vs mixed precision (sensitive layer groups kept in float) on the SSDLite
pedestrian model, ONNX Runtime on the CPU.

Frames of OpenCV's ``vtest.avi``, three disjoint sets: calibration 0..199 (every 4th: 50
frames), selection 200..399 (every 2nd: 100 frames; the choice of the quantization scheme, the
sensitivity sweep and the choice of the float layers), evaluation 400..795 (every 5th: 80
frames; never seen by calibration or selection). Quantization schemes (full INT8, each on the
selection and the evaluation frames): the calibration methods with symmetric INT8 activations
(TensorRT) and percentile ranges with asymmetric UINT8 activations (ONNX Runtime only), Q/DQ
on the inputs of Conv and Add nodes, against percentile ranges on Conv inputs only (the residual
additions and skip paths stay float; the default here, ``--op-types``). Layer groups: the first
3 parts of the node names (one MobileNetV2 block or one predictor convolution: 55 groups of the
88 convolutions), measured one at a time
(:mod:`trt_perception.core.precision.sensitivity`); target recall and precision >= 0.99 vs FP32
with at most 20 % of the convolutions in float; greedy forward selection re-measuring the
``--candidates`` most sensitive groups at each step, backward elimination, then single nodes
back to INT8. Then FP32, full INT8 and the mixed model on the
evaluation frames: detection agreement with FP32, share of convolutions in INT8, and CPU
latency as ratios of medians of alternating runs in this process (1 thread each). Results:
``benchmarks/results/<name>.{md,json}`` and ``<name>_sensitivity.png`` (``--name``, default
``mixed_precision``).
Sweep results are cached (``--cache-dir``), so a re-run takes minutes less.

    .venv/bin/python benchmarks/mixed_precision.py [--video PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime
from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.model_config import load_model_config
from trt_perception.core.precision.model_frames import detection_decoder, read_frames
from trt_perception.core.precision.result_cache import ResultCache, default_precision_cache_dir
from trt_perception.core.precision.sensitivity import (
    SELECT_BY,
    EvalSet,
    SensitivitySweep,
    Target,
    int8_conv_share,
    layer_groups,
    onnx_runner,
)
from trt_perception.core.precision.sensitivity_report import (
    selection_json,
    selection_table,
    sensitivity_chart,
    sensitivity_json,
    sensitivity_table,
)
from trt_perception.core.quantize import DEFAULT_OP_TYPES, METHODS, WEIGHT_ROUNDINGS

SCHEME_OPS = {"conv+add": list(DEFAULT_OP_TYPES), "conv": ["Conv"]}
ROUNDING_LABEL = {"nearest": "", "float": "+wr", "asymmetric": "+awr"}
DEFAULT_SCHEMES = ("percentile/int8/conv+add", "minmax/int8/conv+add", "entropy/int8/conv+add",
                   "percentile/uint8/conv+add")

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results"


def latency_ratios(models: dict[str, Path], input_name: str, tensors: Sequence[np.ndarray],
                   rounds: int) -> dict[str, list[float]]:
    """Per-call inference times (ms) of each model, the models alternating every round."""
    runners = {name: onnx_runner(path, input_name) for name, path in models.items()}
    for run in runners.values():  # warm-up
        run(tensors[0])
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in tqdm(range(rounds), desc="latency rounds", disable=None):
        for name, run in runners.items():
            for tensor in tensors:
                start = time.perf_counter()
                run(tensor)
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def _det(summary: dict[str, Any], key: str) -> str:
    return f"{summary['detections'][key]:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="/work/shared/data/vtest.avi")
    parser.add_argument("--rounds", type=int, default=5, help="alternating latency rounds (x 20 frames each)")
    parser.add_argument("--cache-dir", type=Path, default=default_precision_cache_dir())
    parser.add_argument("--group-depth", type=int, default=3, help="layer groups: first D name parts, 0 = per node")
    parser.add_argument("--selection-every", type=int, default=2,
                        help="selection frames: every N-th of 200..399 (default 2: 100 frames)")
    parser.add_argument("--method", choices=METHODS, default="percentile")
    parser.add_argument("--candidates", type=int, default=4,
                        help="groups re-measured at each forward selection step (default 4)")
    parser.add_argument("--select-by", choices=SELECT_BY, default="margin",
                        help="forward step keeps the candidate with the best target margin or lowest output error")
    parser.add_argument("--no-refine", dest="refine", action="store_false",
                        help="keep whole groups in float (no single nodes back to INT8)")
    parser.add_argument("--no-unbounded", dest="unbounded", action="store_false",
                        help="no second selection without the float budget when the first misses the target")
    parser.add_argument("--op-types", nargs="+", default=["Conv"], metavar="OP",
                        help="node types whose inputs are quantized (default: %(default)s, chosen on the selection "
                             "frames; the package's default adds Gemm, MatMul, ConvTranspose and Add)")
    parser.add_argument("--schemes", nargs="*", default=list(DEFAULT_SCHEMES), metavar="METHOD/ACTIVATIONS/OPS",
                        help="other full-INT8 schemes compared; OPS: conv+add (the default op types) or conv "
                             "(default: %(default)s)")
    parser.add_argument("--bias-correction", action="store_true",
                        help="INT8 convolutions' biases corrected by their mean output error (calibration frames)")
    parser.add_argument("--weight-rounding", nargs="?", const="float", default="nearest", choices=WEIGHT_ROUNDINGS,
                        metavar="MODE", help="INT8 convolution weights rounded to minimize their output error "
                        "(calibration frames): float (the bare flag) on float inputs, asymmetric on the quantized "
                        "model's inputs against the float output")
    parser.add_argument("--centred-inputs", action="store_true",
                        help="convolutions reading a ReLU6 read it centred on the middle of its range "
                             "(trt_perception.core.centred_inputs)")
    parser.add_argument("--select-on-calibration", action="store_true",
                        help="the sweep and the selection also see the calibration frames (two parts of the video "
                        "instead of one: 150 frames by default); the evaluation frames stay held out")
    parser.add_argument("--name", default="mixed_precision", help="results file stem in benchmarks/results")
    args = parser.parse_args(argv)

    config = load_model_config(MODEL_YAML)
    calibration, calibration_geo = read_frames(config, [args.video], every=4, max_frames=50)
    step = args.selection_every
    selection_frames, selection_geo = read_frames(config, [args.video], every=step, skip=-(-200 // step),
                                                  max_frames=-(-200 // step))
    evaluation_frames, evaluation_geo = read_frames(config, [args.video], every=5, skip=80, max_frames=80)
    fp32 = onnx_runner(config.model_path, config.input_name)
    if args.select_on_calibration:
        selection_frames, selection_geo = calibration + selection_frames, calibration_geo + selection_geo
    selection_set = EvalSet(config.input_name, selection_frames, [fp32(t) for t in selection_frames],
                            detection_decoder(config, selection_geo))
    evaluation_set = EvalSet(config.input_name, evaluation_frames, [fp32(t) for t in evaluation_frames],
                             detection_decoder(config, evaluation_geo))
    groups = layer_groups(config.model_path, op_types=args.op_types, depth=args.group_depth)
    start = time.perf_counter()
    cache = ResultCache(args.cache_dir)
    with SensitivitySweep(config.model_path, calibration, selection_set, method=args.method, cache=cache,
                          op_types=args.op_types, bias_correction=args.bias_correction,
                          weight_rounding=args.weight_rounding, centred_inputs=args.centred_inputs,
                          progress=lambda items, **kw: tqdm(items, disable=None, **kw)) as sweep, \
            tempfile.TemporaryDirectory(prefix="mixed_precision.") as work:
        chosen = f"{args.method}/int8/{'conv+add' if 'Add' in args.op_types else 'conv'}" \
            + ("+bc" if args.bias_correction else "") + ROUNDING_LABEL[args.weight_rounding] \
            + ("+centred" if args.centred_inputs else "")
        schemes = {chosen: sweep.evaluate()}
        scheme_models = {}
        for scheme in (s for s in args.schemes if s != chosen):
            method, activations, ops = scheme.split("/")
            with SensitivitySweep(config.model_path, calibration, selection_set, method=method,
                                  activations=activations, cache=cache, op_types=SCHEME_OPS[ops]) as other:
                schemes[scheme] = other.evaluate()
                scheme_models[scheme] = other.quantize(Path(work) / f"{method}_{activations}_{ops}.onnx").output
        ranking = sweep.measure(groups)
        target = Target(recall=0.99, precision=0.99)
        convs = sum(g.convs for g in ranking)
        selection = sweep.select(ranking, target, max_float_convs=int(0.2 * convs), candidates=args.candidates,
                                 refine_nodes=args.refine, by=args.select_by)
        # Without the float budget: how many groups the target takes (when the budget was too small).
        unbounded = sweep.select(ranking, target, candidates=args.candidates, refine_nodes=args.refine,
                                 by=args.select_by) \
            if args.unbounded and not selection.reached else None
        sweep_seconds = time.perf_counter() - start
        models = {"FP32": config.model_path, "INT8": Path(work) / "int8.onnx", "mixed": Path(work) / "mixed.onnx"}
        sweep.quantize(models["INT8"])
        sweep.quantize(models["mixed"], exclude=selection.float_nodes)
        if unbounded is not None:
            models["mixed, no budget"] = Path(work) / "mixed_unbounded.onnx"
            sweep.quantize(models["mixed, no budget"], exclude=unbounded.float_nodes)
        rows: dict[str, Any] = {}
        for name, path in models.items():
            summary = evaluation_set.compare(onnx_runner(path, config.input_name))
            int8_convs, all_convs = int8_conv_share(path)
            rows[name] = {"summary": summary, "int8_convs": int8_convs, "convs": all_convs}
        scheme_rows = {chosen: {"selection": schemes[chosen],
                                               "evaluation": rows["INT8"]["summary"]}}
        for scheme, path in scheme_models.items():
            scheme_rows[scheme] = {"selection": schemes[scheme],
                                   "evaluation": evaluation_set.compare(onnx_runner(path, config.input_name))}
        times = latency_ratios(models, config.input_name, evaluation_frames[::4], args.rounds)
        evaluations = sweep.evaluations

    median = {name: statistics.median(values) for name, values in times.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    sensitivity_chart(ranking, RESULTS / f"{args.name}_sensitivity.png", selection)
    lines = ["# Mixed precision INT8: SSDLite pedestrian, ONNX Runtime CPU", "",
             f"Frames of vtest.avi: calibration {len(calibration)} (0..199 every 4), selection "
             f"{len(selection_frames)} (" + ("the calibration frames and " if args.select_on_calibration else "")
             + f"200..399 every {step}), evaluation {len(evaluation_frames)} (400..795 every 5, "
             f"held out from calibration and selection). {args.method.capitalize()} calibration"
             + (" (99.999)" if args.method == "percentile" else "") + ", symmetric INT8, "
             f"per-channel weights, Q/DQ on the inputs of {'/'.join(args.op_types)} nodes"
             + ("" if "Add" in args.op_types else " (additions stay float: they are no convolutions)")
             + {"nearest": "", "float": ", INT8 weights rounded to minimize each convolution's output error on the "
                "calibration frames (`--weight-rounding`)",
                "asymmetric": ", INT8 weights rounded to minimize the error of each convolution's output computed "
                "from the quantized network's inputs against the float network's output on the calibration frames "
                "(`--weight-rounding asymmetric`: full INT8 model, layer by layer, up to 2 steps from the float "
                "weight)"}[args.weight_rounding]
             + (", biases corrected by each INT8 convolution's mean output error (`--bias-correction`)"
                if args.bias_correction else "")
             + (", convolutions reading a ReLU6 read it centred on 3 (`--centred-inputs`: [-3, 3], the shift in "
                "their bias)" if args.centred_inputs else "")
             + ". Detections at score >= 0.5 matched to FP32's at IoU >= 0.5.", "",
             f"Sensitivity: {len(groups)} layer groups ("
             + (f"first {args.group_depth} name parts" if args.group_depth else "one per node")
             + ") quantized one at a time on the "
             f"selection frames; selection ({args.candidates} candidates per step, the one with the "
             + ("best target margin" if args.select_by == "margin" else "lowest output error") + " kept"
             + (", then single nodes back to INT8" if args.refine else "")
             + ") target recall and precision >= 0.99 vs FP32 with at most "
             f"{int(0.2 * convs)} of {convs} convolutions in float. Target on the selection frames "
             f"{'reached' if selection.reached else 'NOT reached'} with {len(selection.float_groups)} group(s) "
             f"({len(selection.float_nodes)} nodes, {convs - selection.final.summary['int8_convs']} convolutions) "
             f"in float: {', '.join(f'`{g}`' for g in selection.float_nodes) or 'none'}. "
             f"{evaluations} variants evaluated in this run ({sweep_seconds:.0f} s; the rest came from the cache).",
             *([] if unbounded is None else [
                 "", f"Without the float budget the selection {'reaches' if unbounded.reached else 'does not reach'} "
                 f"the target with {len(unbounded.float_groups)} group(s) ({len(unbounded.float_nodes)} nodes) in "
                 f"float ({unbounded.final.summary['int8_convs']}/{convs} convolutions INT8): "
                 + ", ".join(f"`{g}`" for g in unbounded.float_nodes) + " (row `mixed, no budget`)."]),
             "", "## Quantization scheme (full INT8)", "",
             f"Chosen on the selection frames (first row: the scheme used above and below, `{chosen}`); the "
             "evaluation columns only report. `int8` = symmetric INT8 activations (zero point 0: what TensorRT "
             "runs); `uint8` = asymmetric UINT8 activations with a zero point (ONNX Runtime only: TensorRT has no "
             "UINT8 Q/DQ; worse on this AVX2 CPU without VNNI, where ONNX Runtime's U8S8 kernels likely saturate). "
             "`conv+add`: Q/DQ on the inputs of convolutions and residual additions; `conv`: convolutions only "
             "(the additions and the skip paths stay float); `+wr`: output-aware weight rounding, `+awr`: its "
             "asymmetric variant (quantized inputs), `+bc`: bias correction. Weights: symmetric INT8 per channel.", "",
             "| calibration / activations / quantized ops | selection recall | selection precision | "
             "selection output error | evaluation recall | evaluation precision | evaluation output error |",
             "|---|---:|---:|---:|---:|---:|---:|",
             *[f"| {scheme} | {_det(r['selection'], 'recall')} | {_det(r['selection'], 'precision')} | "
               f"{r['selection']['output_error']:.4f} | {_det(r['evaluation'], 'recall')} | "
               f"{_det(r['evaluation'], 'precision')} | {r['evaluation']['output_error']:.4f} |"
               for scheme, r in scheme_rows.items()],
             "", "## Evaluation frames (held out)", "",
             "| model | convs in INT8 | FP32 dets | dets | matched | recall | precision | mean IoU | "
             "score drift mean abs | output error | CPU latency / FP32 | / full INT8 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        d = row["summary"]["detections"]
        lines.append(f"| {name} | {row['int8_convs']}/{row['convs']} ({row['int8_convs'] / row['convs']:.0%}) | "
                     f"{d['reference_detections']} | {d['test_detections']} | {d['matched']} | {d['recall']:.3f} | "
                     f"{d['precision']:.3f} | {d['mean_iou']:.3f} | {d['score_drift_mean_abs']:.4f} | "
                     f"{row['summary']['output_error']:.4f} | {median[name] / median['FP32']:.2f} | "
                     f"{median[name] / median['INT8']:.2f} |")
    lines += ["", f"Latency: medians of {len(times['FP32'])} calls per model ({args.rounds} alternating rounds of "
              f"{len(evaluation_frames[::4])} frames, ORT CPU EP, 1 thread each, one process): "
              + ", ".join(f"{n} {m:.2f} ms" for n, m in median.items())
              + ". On a CPU, ONNX Runtime runs Q/DQ models slower than FP32 (the Q/DQ pairs are executed); "
              "the INT8 speed-up is TensorRT's on the GPU, so the CPU ratios only rank the variants' overhead.",
              "", "## Selection steps (selection frames)", "",
              f"Forward steps re-measure the {args.candidates} most sensitive groups not yet in float "
              "(`try keep ...` rows) and keep the one with the largest margin to the tighter of the two targets; "
              "`try ... in INT8 again` rows are the backward elimination"
              + (" and then single nodes back in INT8." if args.refine else "."), "",
              selection_table(selection), "",
              *([] if unbounded is None else ["Without the float budget:", "", selection_table(unbounded), ""]),
              "## Sensitivity ranking (selection frames, only that group INT8)", "",
              f"![sensitivity]({args.name}_sensitivity.png)", "", sensitivity_table(ranking, selection), "",
              f"Machine: {platform.processor() or platform.machine()} (2 cores shared with other jobs), Python "
              f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}."]
    text = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / f"{args.name}.md", text)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(
        {"models": rows, "schemes": scheme_rows, "latency_ms": times, "latency_median_ms": median,
         "sensitivity": sensitivity_json(ranking, selection),
         "unbounded_selection": None if unbounded is None else selection_json(unbounded)},
        indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
