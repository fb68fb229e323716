"""How reproducible is a quantized model's detection agreement with FP32? Inputs jittered far
below one pixel level, SSDLite pedestrian, ONNX Runtime CPU.

An INT8 model rounds every quantized activation to its step; a value near a rounding boundary
goes either way under any tiny change of its input, and the rounding error it then carries
propagates to later layers, where it moves further values across their boundaries. So the
detections of a Q/DQ model near the score threshold depend on numerical details as small as a
different summation order (another runtime, another kernel, TensorRT instead of ONNX Runtime).
This script measures that floor with ONNX Runtime alone: each model runs on the held-out frames
(vtest.avi 400..795 every 5th, as ``benchmarks/mixed_precision.py``) and on the same frames plus
uniform noise of +-``eps`` for each of ``--eps`` (default 1e-5 and 2/255: one 8-bit pixel level
is 2/255 = 0.0078 in this model's input, so 1e-5 is 1/800 of a level, far below what any camera
or codec reproduces, and 2/255 is one level, the least sensor or codec noise), ``--seeds`` noise
draws each. Reported per model: agreement of the jittered run with the
same model's clean run (self), and agreement with FP32 on the clean and on each jittered input
(its spread is how far a single figure such as "recall 0.990" can be trusted). Models: FP32,
full INT8 and the mixed model with the float nodes of a mixed-precision result
(``--float-nodes-from``), all quantized as that benchmark's recipe (percentile calibration on
0..199 every 4th, Q/DQ on Conv inputs, weight rounding, bias correction).

    .venv/bin/python benchmarks/int8_noise_floor.py [--eps 1e-5] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.model_config import load_model_config
from trt_perception.core.precision.model_frames import detection_decoder, read_frames
from trt_perception.core.precision.sensitivity import EvalSet, int8_conv_share, onnx_runner
from trt_perception.core.quantize import quantize_model

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results"


def jittered(run: Callable[[np.ndarray], Any], eps: float, seed: int) -> Callable[[np.ndarray], Any]:
    """``run`` on its input plus uniform noise in [-eps, eps] (a fresh draw per call, from ``seed``)."""
    rng = np.random.default_rng(seed)
    return lambda tensor: run((tensor + rng.uniform(-eps, eps, tensor.shape)).astype(tensor.dtype))


def agreement(summary: dict[str, Any]) -> dict[str, float]:
    """Recall, precision and output error of one comparison summary."""
    det = summary["detections"]
    return {"recall": det["recall"], "precision": det["precision"], "output_error": summary["output_error"],
            "matched": det["matched"], "reference_detections": det["reference_detections"],
            "test_detections": det["test_detections"]}


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="/work/shared/data/vtest.avi")
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-5, 2 / 255],
                        help="input noise amplitudes (model input units)")
    parser.add_argument("--seeds", type=int, default=5, help="noise draws per model")
    parser.add_argument("--float-nodes-from", type=Path,
                        default=RESULTS / "mixed_precision_wr_bc_wide.json",
                        help="mixed-precision result whose selection's float nodes make the mixed model")
    parser.add_argument("--name", default="int8_noise_floor", help="results file stem in benchmarks/results")
    args = parser.parse_args(argv)

    config = load_model_config(MODEL_YAML)
    calibration, _ = read_frames(config, [args.video], every=4, max_frames=50)
    frames, geometries = read_frames(config, [args.video], every=5, skip=80, max_frames=80)
    decode = detection_decoder(config, geometries)
    float_nodes = json.loads(args.float_nodes_from.read_text())["sensitivity"]["selection"]["float_nodes"]
    fp32 = onnx_runner(config.model_path, config.input_name)
    fp32_set = EvalSet(config.input_name, frames, [fp32(t) for t in frames], decode)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="int8_noise_floor.") as work:
        models = {"FP32": Path(config.model_path), "INT8": Path(work) / "int8.onnx",
                  "mixed": Path(work) / "mixed.onnx"}
        for name, exclude in (("INT8", []), ("mixed", float_nodes)):
            quantize_model(config.model_path, models[name], config.input_name, calibration, op_types=["Conv"],
                           nodes_to_exclude=exclude, bias_correction=True, weight_rounding="float")
        for name, path in tqdm(models.items(), desc="models", disable=None):
            run = onnx_runner(path, config.input_name)
            own = EvalSet(config.input_name, frames, [run(t) for t in frames], decode)
            int8_convs, convs = int8_conv_share(path)
            rows[name] = {"int8_convs": int8_convs, "convs": convs,
                          "vs_fp32_clean": agreement(fp32_set.compare(run)), "jittered": {}}
            for eps in args.eps:
                rows[name]["jittered"][f"{eps:g}"] = {
                    "self": [agreement(own.compare(jittered(run, eps, seed))) for seed in range(args.seeds)],
                    "vs_fp32": [agreement(fp32_set.compare(jittered(run, eps, 100 + seed)))
                                for seed in range(args.seeds)]}

    lines = ["# INT8 agreement noise floor: SSDLite pedestrian, ONNX Runtime CPU", "",
             f"79 held-out vtest frames (400..795 every 5th), inputs plus uniform noise of +-eps "
             f"(one pixel level = 0.0078), {args.seeds} draws per model and eps; `benchmarks/int8_noise_floor.py`. "
             "Self: the jittered run against the same model's clean run. vs FP32: against FP32's detections on "
             "the clean frames. Ranges are min-max over the draws.", "",
             "| model | convs in INT8 | eps | self recall | self precision | self output error "
             "| vs FP32 recall (clean) | vs FP32 precision (clean) | vs FP32 recall (jittered) "
             "| vs FP32 precision (jittered) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (name, row), eps in ((item, eps) for item in rows.items() for eps in item[1]["jittered"]):
        self_runs, jit = row["jittered"][eps]["self"], row["jittered"][eps]["vs_fp32"]
        lines.append(
            f"| {name} | {row['int8_convs']}/{row['convs']} | {eps} | "
            f"{spread([r['recall'] for r in self_runs])} | "
            f"{spread([r['precision'] for r in self_runs])} | "
            f"{statistics.median(r['output_error'] for r in self_runs):.4f} | "
            f"{row['vs_fp32_clean']['recall']:.3f} | {row['vs_fp32_clean']['precision']:.3f} | "
            f"{spread([r['recall'] for r in jit])} | {spread([r['precision'] for r in jit])} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / f"{args.name}.json",
                      json.dumps({"eps": args.eps, "seeds": args.seeds, "float_nodes": float_nodes, "models": rows},
                                 indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
