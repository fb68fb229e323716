"""INT8 recipes on the SSDLite pedestrian model: calibration method, bias correction and
output-aware weight rounding, each on full INT8 and on the mixed model's float layers.

Same frames and scheme as ``benchmarks/mixed_precision.py`` (calibration 0..199 every 4, selection
200..399 every 2, evaluation 400..795 every 5, held out; symmetric INT8, Q/DQ on convolutions).
Each recipe quantizes the model twice: full INT8, and with the float nodes of
``benchmarks/results/<--float-nodes-from>.json``'s selection (``mixed``; default
``mixed_precision``, chosen by that run with its own recipe). Recipes:
``METHOD[+bc][+wr|+awr]``: ``METHOD`` the activation calibration (``percentile`` 99.999 or
``mse``), ``bc`` bias correction (:mod:`trt_perception.core.bias_correction`), ``wr`` weight
rounding (:mod:`trt_perception.core.weight_rounding`), ``awr`` its asymmetric reconstruction
(quantized inputs; ``quantize_model(weight_rounding="asymmetric")``), all measured on the
calibration frames. Detection agreement with FP32 on the selection and the evaluation frames;
writes ``benchmarks/results/<--name>.{md,json}`` (default ``int8_recipes``).

    .venv/bin/python benchmarks/int8_recipes.py [--video PATH] [--recipes percentile percentile+wr ...]
        [--float-nodes-from mixed_precision_wr_bc] [--name int8_recipes_awr]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.model_config import load_model_config
from trt_perception.core.precision.model_frames import detection_decoder, read_frames
from trt_perception.core.precision.sensitivity import EvalSet, int8_conv_share, onnx_runner
from trt_perception.core.quantize import quantize_model

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RECIPES = ("percentile", "percentile+bc", "mse", "mse+bc", "percentile+wr", "percentile+bc+wr", "mse+bc+wr")


def main(argv: Sequence[str] | None = None) -> int:
    """Quantize, evaluate, write the results; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="/work/shared/data/vtest.avi")
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), metavar="METHOD[+bc][+wr|+awr]")
    parser.add_argument("--float-nodes-from", default="mixed_precision", metavar="STEM",
                        help="the mixed rows keep the float nodes of benchmarks/results/STEM.json's selection")
    parser.add_argument("--name", default="int8_recipes", help="results file stem in benchmarks/results")
    args = parser.parse_args(argv)
    config = load_model_config(MODEL_YAML)
    calibration, _ = read_frames(config, [args.video], every=4, max_frames=50)
    fp32 = onnx_runner(config.model_path, config.input_name)
    sets = {}
    for name, (skip, every, count) in {"selection": (100, 2, 100), "evaluation": (80, 5, 80)}.items():
        frames, geometry = read_frames(config, [args.video], every=every, skip=skip, max_frames=count)
        sets[name] = EvalSet(config.input_name, frames, [fp32(t) for t in frames], detection_decoder(config, geometry))
    source = RESULTS / f"{args.float_nodes_from}.json"
    mixed = json.loads(source.read_text())["sensitivity"]["selection"]["float_nodes"]
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="int8_recipes.") as work:
        runs = [(recipe, model) for recipe in args.recipes for model in ("INT8", "mixed")]
        for recipe, model in tqdm(runs, desc="recipes", disable=None):
            method, *options = recipe.split("+")
            path = Path(work) / "variant.onnx"
            quantize_model(config.model_path, path, config.input_name, calibration, method=method, op_types=("Conv",),
                           nodes_to_exclude=mixed if model == "mixed" else [],
                           ranges_cache=Path(work) / f"ranges_{method}.json",
                           bias_correction="bc" in options,
                           weight_rounding="asymmetric" if "awr" in options else "wr" in options)
            rows[f"{model}, {recipe}"] = {"int8_convs": int8_conv_share(path),
                                          **{s: evalset.compare(onnx_runner(path, config.input_name))
                                             for s, evalset in sets.items()}}
    lines = ["# INT8 recipes: SSDLite pedestrian, ONNX Runtime CPU", "",
             "Frames and scheme as in `mixed_precision.md` (calibration 50, selection 100, evaluation 79 held out; "
             "symmetric INT8, per-channel weights, Q/DQ on convolutions). Recipe `METHOD[+bc][+wr|+awr]`: activation "
             "ranges by the 99.999th `percentile` of |x| or the `mse`-optimal clip per tensor; `bc` bias correction "
             "(each INT8 convolution's mean output error per channel over the calibration frames subtracted from its "
             "bias); `wr` weight rounding (each INT8 weight rounded down or up to minimize its convolution's output "
             "error on the calibration frames' activations instead of to the nearest step); `awr` the asymmetric "
             "reconstruction (each INT8 weight chosen, up to 2 steps from the float weight, to minimize the error of "
             "the convolution's output computed from the inputs the full INT8 model computes, upstream convolutions "
             "already so rounded, against the float model's output). `mixed`: the float nodes "
             f"of `{source.name}`'s selection ({len(mixed)} nodes).", "",
             "| model, recipe | convs in INT8 | selection recall | selection precision | selection output error "
             "| evaluation recall | evaluation precision | evaluation mean IoU | evaluation output error |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in sorted(rows.items(), key=lambda item: item[0].startswith("mixed")):
        s, e = row["selection"], row["evaluation"]
        int8, convs = row["int8_convs"]
        lines.append(f"| {name} | {int8}/{convs} ({100 * int8 / convs:.0f}%) | {s['detections']['recall']:.3f} "
                     f"| {s['detections']['precision']:.3f} | {s['output_error']:.4f} "
                     f"| {e['detections']['recall']:.3f} | {e['detections']['precision']:.3f} "
                     f"| {e['detections']['mean_iou']:.3f} | {e['output_error']:.4f} |")
    atomic_write_text(RESULTS / f"{args.name}.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(rows, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
