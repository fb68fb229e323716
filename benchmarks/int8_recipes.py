"""Bias correction of INT8 convolutions on the SSDLite pedestrian model: with vs without.

Same frames and scheme as ``benchmarks/mixed_precision.py`` (calibration 0..199 every 4, selection
200..399 every 2, evaluation 400..795 every 5, held out; percentile 99.999, symmetric INT8,
Q/DQ on convolutions): full INT8 and the ``mixed`` selection of
``benchmarks/results/mixed_precision.json`` (its float nodes, chosen without bias correction),
each quantized without and with ``bias_correction`` (:mod:`trt_perception.core.bias_correction`,
measured on the calibration frames). Detection agreement with FP32 on the selection and the
evaluation frames; writes ``benchmarks/results/bias_correction.{md,json}``.

    .venv/bin/python benchmarks/bias_correction.py [--video PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.model_config import load_model_config
from trt_perception.core.precision.model_frames import detection_decoder, read_frames
from trt_perception.core.precision.sensitivity import EvalSet, int8_conv_share, onnx_runner
from trt_perception.core.quantize import quantize_model

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Quantize, evaluate, write the results; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="/work/shared/data/vtest.avi")
    args = parser.parse_args(argv)
    config = load_model_config(MODEL_YAML)
    calibration, _ = read_frames(config, [args.video], every=4, max_frames=50)
    fp32 = onnx_runner(config.model_path, config.input_name)
    sets = {}
    for name, (skip, every, count) in {"selection": (100, 2, 100), "evaluation": (80, 5, 80)}.items():
        frames, geometry = read_frames(config, [args.video], every=every, skip=skip, max_frames=count)
        sets[name] = EvalSet(config.input_name, frames, [fp32(t) for t in frames], detection_decoder(config, geometry))
    mixed = json.loads((RESULTS / "mixed_precision.json").read_text())["sensitivity"]["selection"]["float_nodes"]
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bias_correction.") as work:
        ranges = Path(work) / "ranges.json"
        for model, exclude in (("INT8", []), ("mixed", mixed)):
            for corrected in (False, True):
                name = f"{model}{', bias corrected' if corrected else ''}"
                path = Path(work) / "variant.onnx"
                quantize_model(config.model_path, path, config.input_name, calibration, op_types=("Conv",),
                               nodes_to_exclude=exclude, ranges_cache=ranges, bias_correction=corrected)
                rows[name] = {"int8_convs": int8_conv_share(path),
                              **{s: evalset.compare(onnx_runner(path, config.input_name))
                                 for s, evalset in sets.items()}}
                print(name, {s: rows[name][s]["detections"] for s in sets}, flush=True)
    lines = ["# Bias correction of INT8 convolutions: SSDLite pedestrian, ONNX Runtime CPU", "",
             "Frames and scheme as in `mixed_precision.md` (calibration 50, selection 100, evaluation 79 held out; "
             "percentile 99.999, symmetric INT8, Q/DQ on convolutions). `bias corrected`: each INT8 convolution's "
             "mean output error per channel over the calibration frames subtracted from its bias. `mixed`: the float "
             f"nodes of `mixed_precision.json`'s selection ({len(mixed)} nodes, chosen without bias correction).", "",
             "| model | convs in INT8 | selection recall | selection precision | selection output error "
             "| evaluation recall | evaluation precision | evaluation mean IoU | evaluation output error |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        s, e = row["selection"], row["evaluation"]
        int8, convs = row["int8_convs"]
        lines.append(f"| {name} | {int8}/{convs} ({100 * int8 / convs:.0f}%) | {s['detections']['recall']:.3f} "
                     f"| {s['detections']['precision']:.3f} | {s['output_error']:.4f} "
                     f"| {e['detections']['recall']:.3f} | {e['detections']['precision']:.3f} "
                     f"| {e['detections']['mean_iou']:.3f} | {e['output_error']:.4f} |")
    atomic_write_text(RESULTS / "bias_correction.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / "bias_correction.json", json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
