"""Accuracy cost of INT8 (Q/DQ, ONNX Runtime static quantization) against FP32 on the real SSD model.

Calibrates the shipped SSDLite pedestrian model on frames 0..199 (every 4th: 50 frames) of OpenCV's
``vtest.avi`` with each calibration method, then runs FP32 and every INT8 model through the
ONNX Runtime backend and the SSD decoder (:class:`Pipeline`) on the held-out frames 400..795 (every
5th: 80 frames) and compares the INT8 detections with the FP32 ones
(:class:`~trt_perception.core.tensorrt.agreement.DetectionAgreement`: one-to-one matches at
IoU >= 0.5, mean IoU, score drift, precision and recall of INT8 taking FP32 as the reference),
at the shipped score threshold 0.5. Also reports the largest raw-output difference (logits and box
encodings) and the CPU inference median of each model. Prints a table and writes it as Markdown
to ``benchmarks/results/int8_accuracy.md``.

    .venv/bin/python benchmarks/int8_accuracy.py [--video PATH] [--methods entropy percentile minmax]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime

from trt_perception.core.backends import create_backend
from trt_perception.core.decode import create_decoder
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.io.frame_sources import open_frames
from trt_perception.core.model_config import ModelConfig, load_model_config
from trt_perception.core.pipeline import Pipeline
from trt_perception.core.quantize import METHODS, quantize_model
from trt_perception.core.tensorrt.agreement import DetectionAgreement
from trt_perception.core.tensorrt.calibration import preprocessed_frames

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DEFAULT_VIDEO = Path("/work/shared/data/vtest.avi")
CALIBRATION = range(0, 200, 4)
EVALUATION = range(400, 796, 5)


def frames_in(video: Path, indices: range) -> list[np.ndarray]:
    """The BGR frames of ``video`` whose index is in ``indices``."""
    wanted = set(indices)
    return [pixels for index, pixels in open_frames(video) if index in wanted]


def run_model(config: ModelConfig, frames: Sequence[np.ndarray]) -> tuple[list[Any], list[float]]:
    """Detections and inference times (ms) of ``config``'s model on ``frames`` (ORT, 1 thread)."""
    backend = create_backend("onnxruntime", str(config.model_path), threads=1)
    backend.activate()
    detections, times = [], []
    try:
        pipeline = Pipeline(config, backend, create_decoder(config))
        for pixels in frames:
            result, stage = pipeline.run(pixels, "bgr")
            detections.append(result)
            times.append(stage.inference_ns / 1e6)
    finally:
        backend.deactivate()
    return detections, times


def raw_outputs(config: ModelConfig, frames: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The model outputs on ``frames`` (preprocessed as the pipeline does)."""
    with create_backend("onnxruntime", str(config.model_path), threads=1) as backend:
        return [{k: v.copy() for k, v in backend.infer({config.input_name: tensor}).items()}
                for tensor in preprocessed_frames([[(0, f) for f in frames]], config.preprocess)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["entropy", "percentile", "minmax"])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "int8_accuracy.md")
    args = parser.parse_args(argv)

    config = load_model_config(MODEL_YAML)
    calibration = frames_in(args.video, CALIBRATION)
    evaluation = frames_in(args.video, EVALUATION)
    reference, fp32_times = run_model(config, evaluation)
    reference_raw = raw_outputs(config, evaluation)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8_accuracy.") as work:
        for method in args.methods:
            start = time.perf_counter()
            tensors = preprocessed_frames([[(0, f) for f in calibration]], config.preprocess)
            report = quantize_model(config.model_path, Path(work) / f"{method}.onnx", config.input_name, tensors,
                                    method=method)
            seconds = time.perf_counter() - start
            int8 = dataclasses.replace(config, model_path=report.output)
            detections, times = run_model(int8, evaluation)
            agreement = DetectionAgreement(iou_threshold=0.5)
            for ref, test in zip(reference, detections):
                agreement.add(ref.boxes_xyxy, ref.scores, ref.class_ids, test.boxes_xyxy, test.scores, test.class_ids)
            raw = raw_outputs(int8, evaluation)
            diffs = {name: max(float(np.abs(r[name] - q[name]).max()) for r, q in zip(reference_raw, raw))
                     for name in reference_raw[0]}
            rows.append((method, report, seconds, agreement.summary(), diffs, statistics.median(times)))

    lines = ["# INT8 (Q/DQ) accuracy against FP32: SSDLite pedestrian, ONNX Runtime", "",
             f"Calibration: {len(calibration)} frames of vtest.avi "
             f"(frames {CALIBRATION.start}..{CALIBRATION.stop - 1}, "
             f"every {CALIBRATION.step}); evaluation: {len(evaluation)} held-out frames "
             f"({EVALUATION.start}..{EVALUATION.stop - 1}, every {EVALUATION.step}); score threshold "
             f"{config.decoder.get('score_threshold')}, match at IoU >= 0.5, same class. FP32 finds "
             f"{sum(len(d) for d in reference)} detections "
             f"({sum(len(d) for d in reference) / len(reference):.2f} per frame).", "",
             "| method | FP32 dets | INT8 dets | matched | precision | recall | mean IoU | score drift mean | "
             "mean abs | max abs | max abs diff logits | max abs diff boxes | calib s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method, report, seconds, s, diffs, _ in rows:
        lines.append(f"| {method} | {s['reference_detections']} | {s['test_detections']} | {s['matched']} | "
                     f"{s['precision']:.3f} | {s['recall']:.3f} | {s['mean_iou']:.3f} | {s['score_drift_mean']:+.4f} | "
                     f"{s['score_drift_mean_abs']:.4f} | {s['score_drift_max_abs']:.4f} | "
                     f"{diffs.get('class_predictions', float('nan')):.3f} | "
                     f"{diffs.get('box_encodings', float('nan')):.3f} | "
                     f"{seconds:.0f} |")
    lines += ["", "CPU inference (ORT CPU EP, 1 thread), median over the evaluation frames: "
              f"FP32 {statistics.median(fp32_times):.2f} ms; "
              + "; ".join(f"INT8 {method} {median:.2f} ms" for method, *_, median in rows) + ".", "",
              f"Q/DQ nodes: {rows[0][1].quantize_nodes} QuantizeLinear, {rows[0][1].dequantize_nodes} "
              "DequantizeLinear (symmetric INT8, per-channel weights, inputs of Conv/Add).", "",
              f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
              f"numpy {np.__version__}, onnxruntime {onnxruntime.__version__}.", "",
              "Detections are the INT8 model's own, compared box by box with FP32's: precision = matched / INT8 "
              "detections, recall = matched / FP32 detections. Score drift = INT8 score - FP32 score of a matched "
              "pair. Raw differences are the largest absolute differences of the model outputs over all "
              "evaluation frames (class logits and box encodings, before decoding)."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
