"""Quantization-aware fine-tuning (QAT) of Q/DQ INT8 models, distilled from FP32 with torch.

Does it lower the INT8 error where weight rounding and bias correction stopped?

Three steps, two machines:

    # here: the FP32, full INT8 and mixed Q/DQ models (recipe of benchmarks/int8_noise_floor.py)
    .venv/bin/python benchmarks/qat_finetune.py prepare --dir qat_work
    # on the GPU machine (torch, onnx, OpenCV; qat_work/ is git-ignored: carry it there):
    # fine-tune, write the tuned Q/DQ models to $OUT
    python3 benchmarks/qat_finetune.py train --dir qat_work --video qat_work/vtest.avi
    # here: held-out agreement with FP32 (ONNX Runtime CPU) -> benchmarks/results/qat_finetune.md
    .venv/bin/python benchmarks/qat_finetune.py evaluate --dir qat_work --tuned $OUT

Training: frames 0..399 of vtest.avi (every frame; the held-out frames 400..795 are never seen),
FP32 outputs as targets. The Q/DQ graph is run in torch as ONNX Runtime runs it (fake
quantization with straight-through rounding); trained: the INT8 weights in units of their
per-channel step (scales fixed), every activation step (LSQ-style, as log scale), the biases of
the INT8 convolutions (float layers stay as they are). Loss: squared error of the pedestrian logit
weighted by 4 p (1 - p) + 0.1 (p: FP32's score, so anchors near the 0.5 threshold count most)
plus 0.25 x the box-encoding error weighted by p. Adam, cosine schedule, batch 32. Export: INT8
weights rounded and clipped to [-127, 127], activation scales replaced, INT32 biases requantized
with the new input scale; the graph is unchanged (TensorRT builds it as before).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INPUT = "normalized_input_image_tensor"
OUTPUTS = ["box_encodings", "class_predictions"]
#: (tag, start model, steps, lr of INT8 weights (steps), of log activation scales, of biases, saved steps)
CONFIGS = [("mixed_qat", "mixed", 2000, 0.01, 0.002, 3e-4, (500, 1000)),
           ("mixed_qat_slow", "mixed", 2000, 0.003, 5e-4, 1e-4, ()),
           ("int8_qat", "int8", 2000, 0.01, 0.002, 3e-4, (1000,))]


def frames(path: str, count: int) -> np.ndarray:
    """The first ``count`` frames of a video as the model's input (300x300 stretch, RGB, [-1, 1])."""
    import cv2
    capture, result = cv2.VideoCapture(path), []
    while len(result) < count:
        ok, frame = capture.read()
        if not ok:
            break
        x = cv2.resize(frame, (300, 300), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].astype(np.float32)
        result.append(((x - 127.5) / 127.5).transpose(2, 0, 1))
    return np.stack(result)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


class QdqGraph:
    """A Q/DQ ONNX model (the ops of the SSDLite model) as a torch function with trainable
    quantization: ``params`` holds ``a:<scale>`` (log activation steps), ``w:<int8 weights>``
    (weights in units of their step) and ``b:<int32 bias>`` (float biases of INT8 convolutions).
    """

    def __init__(self, path: Path, device: str) -> None:
        import onnx
        import torch
        from onnx import numpy_helper
        self.model = onnx.load(str(path))
        graph = self.model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.activation_scales = {node.input[1] for node in graph.node if node.op_type == "QuantizeLinear"}
        self.weights: set[str] = set()
        self.biases: dict[str, tuple[str, Any]] = {}  # int32 bias -> (its scale, the Conv)
        for node in graph.node:
            if node.op_type != "Conv":
                continue
            dq_w = self.producer.get(node.input[1])
            if dq_w is not None and dq_w.op_type == "DequantizeLinear" and dq_w.input[0] in self.inits:
                self.weights.add(dq_w.input[0])
            dq_b = self.producer.get(node.input[2]) if len(node.input) > 2 else None
            if dq_b is not None and dq_b.op_type == "DequantizeLinear" and dq_b.input[0] in self.inits:
                self.biases[dq_b.input[0]] = (dq_b.input[1], node)
        self.consts = {k: torch.tensor(v.astype(np.float32) if v.dtype.kind == "f" else v, device=device)
                       for k, v in self.inits.items() if v.dtype != np.int64}
        self.params = {f"a:{s}": torch.tensor(np.log(self.inits[s].astype(np.float32)), device=device)
                       for s in self.activation_scales}
        self.params.update({f"w:{w}": torch.tensor(self.inits[w].astype(np.float32), device=device)
                            for w in self.weights})
        self.params.update({f"b:{b}": torch.tensor((self.inits[b] * self.inits[s].astype(np.float64))
                                                   .astype(np.float32), device=device)
                            for b, (s, _) in self.biases.items()})
        for param in self.params.values():
            param.requires_grad_(True)

    def forward(self, x: Any) -> list[Any]:
        """The model's outputs (OUTPUTS) for the input batch ``x`` (float32 [N, 3, 300, 300])."""
        import torch
        import torch.nn.functional as F

        def ste_round(v: Any) -> Any:
            return v + (torch.round(v) - v).detach()

        env: dict[str, Any] = {INPUT: x}
        get = lambda name: env[name] if name in env else self.consts[name]  # noqa: E731
        for node in self.model.graph.node:
            op, out = node.op_type, node.output[0]
            if op == "QuantizeLinear":
                step = torch.exp(self.params["a:" + node.input[1]])
                env[out] = ("quantized", ste_round(torch.clamp(get(node.input[0]) / step, -128, 127)), step)
            elif op == "DequantizeLinear":
                source = node.input[0]
                if isinstance(env.get(source), tuple):
                    _, values, step = env[source]
                    env[out] = values * step
                elif source in self.weights:
                    values = torch.clamp(ste_round(self.params["w:" + source]), -127, 127)
                    env[out] = values * self.consts[node.input[1]].reshape((-1,) + (1,) * (values.dim() - 1))
                elif source in self.biases:
                    env[out] = self.params["b:" + source]
                else:
                    raise ValueError(f"unsupported DequantizeLinear {node.name}")
            elif op == "Conv":
                pads, x_in = _attr(node, "pads", [0, 0, 0, 0]), get(node.input[0])
                if pads[:2] != pads[2:]:
                    x_in, padding = F.pad(x_in, (pads[1], pads[3], pads[0], pads[2])), (0, 0)
                else:
                    padding = (pads[0], pads[1])
                env[out] = F.conv2d(x_in, get(node.input[1]), get(node.input[2]) if len(node.input) > 2 else None,
                                    stride=_attr(node, "strides", [1, 1]), padding=padding,
                                    dilation=_attr(node, "dilations", [1, 1]), groups=_attr(node, "group", 1))
            elif op == "Clip":
                env[out] = torch.clamp(get(node.input[0]), float(self.inits[node.input[1]]),
                                       float(self.inits[node.input[2]]))
            elif op == "Add":
                env[out] = get(node.input[0]) + get(node.input[1])
            elif op == "Reshape":
                x_in = get(node.input[0])
                env[out] = x_in.reshape([x_in.shape[i] if int(s) == 0 else int(s)
                                         for i, s in enumerate(self.inits[node.input[1]])])
            elif op == "Transpose":
                env[out] = get(node.input[0]).permute(*_attr(node, "perm"))
            elif op == "Concat":
                env[out] = torch.cat([get(name) for name in node.input], dim=_attr(node, "axis"))
            elif op == "Squeeze":
                y = get(node.input[0])
                for axis in sorted((int(a) for a in self.inits[node.input[1]]), reverse=True):
                    y = y.squeeze(axis)
                env[out] = y
            elif op == "BatchNormalization":
                scale, bias, mean, var = (get(name).reshape(1, -1, 1, 1) for name in node.input[1:5])
                env[out] = (get(node.input[0]) - mean) / torch.sqrt(var + _attr(node, "epsilon", 1e-5)) * scale + bias
            else:
                raise ValueError(f"unsupported op {op} ({node.name})")
        return [env[name] for name in OUTPUTS]

    def export(self, path: Path) -> None:
        """Write the model with the trained values (same graph, see the module docstring)."""
        import onnx
        from onnx import numpy_helper
        model = copy.deepcopy(self.model)
        trained = {k: v.detach().cpu().numpy() for k, v in self.params.items()}
        new = {s: np.exp(trained["a:" + s]).astype(np.float32) for s in self.activation_scales}
        new.update({w: np.clip(np.round(trained["w:" + w]), -127, 127).astype(np.int8) for w in self.weights})
        for bias, (scale_name, conv) in self.biases.items():
            quantize_x = self.producer[self.producer[conv.input[0]].input[0]]
            weight_scale = self.inits[self.producer[conv.input[1]].input[1]]
            scale = (new[quantize_x.input[1]].astype(np.float64) * weight_scale).astype(np.float32)
            new[scale_name] = scale
            new[bias] = np.clip(np.round(trained["b:" + bias].astype(np.float64) / np.maximum(scale, 1e-30)),
                                -2 ** 31, 2 ** 31 - 1).astype(np.int32)
        for tensor in model.graph.initializer:
            if tensor.name in new:
                tensor.CopyFrom(numpy_helper.from_array(new[tensor.name].reshape(self.inits[tensor.name].shape),
                                                        tensor.name))
        onnx.save(model, str(path))


def train(args: argparse.Namespace) -> int:
    """Fine-tune each CONFIGS entry; tuned models and a log to ``$OUT`` (or ``--out``)."""
    import torch
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out or os.environ.get("OUT", "qat_out"))
    out.mkdir(parents=True, exist_ok=True)
    x_all = torch.tensor(frames(args.video, 400), device=device)
    fp32 = QdqGraph(args.dir / "fp32.onnx", device)
    with torch.no_grad():
        targets = [fp32.forward(x_all[i:i + 50]) for i in range(0, len(x_all), 50)]
    boxes_all, logits_all = (torch.cat([t[k] for t in targets]) for k in (0, 1))
    log: dict[str, Any] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "runs": {}}
    for tag, start, steps, lr_w, lr_a, lr_b, saves in CONFIGS:
        graph = QdqGraph(args.dir / f"{start}.onnx", device)
        optimizer = torch.optim.Adam([{"params": [v for k, v in graph.params.items() if k.startswith(prefix)],
                                       "lr": lr} for prefix, lr in (("w:", lr_w), ("a:", lr_a), ("b:", lr_b))])
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        generator = torch.Generator().manual_seed(0)
        began, losses = time.perf_counter(), []
        for step in range(1, steps + 1):
            batch = torch.randperm(len(x_all), generator=generator)[:32]
            boxes, logits = graph.forward(x_all[batch])
            target = logits_all[batch][..., 1]
            p = torch.sigmoid(target)
            loss = ((4 * p * (1 - p) + 0.1) * (logits[..., 1] - target) ** 2).mean() \
                + 0.25 * (p[..., None] * (boxes - boxes_all[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 100 == 0:
                losses.append([step, float(loss)])
                print(tag, step, f"{float(loss):.6f}", f"{time.perf_counter() - began:.0f} s", flush=True)
            if step in saves or step == steps:
                graph.export(out / f"{tag}_{step}.onnx")
        log["runs"][tag] = {"start": start, "steps": steps, "lr": [lr_w, lr_a, lr_b], "losses": losses,
                            "seconds": time.perf_counter() - began}
    (out / "qat_log.json").write_text(json.dumps(log, indent=1) + "\n")
    return 0


def prepare(args: argparse.Namespace) -> int:
    """FP32, full INT8 and mixed Q/DQ models (and the video) into ``--dir``."""
    import shutil

    from trt_perception.core.model_config import load_model_config
    from trt_perception.core.precision.model_frames import read_frames
    from trt_perception.core.quantize import quantize_model
    config = load_model_config(ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml")
    args.dir.mkdir(parents=True, exist_ok=True)
    calibration, _ = read_frames(config, [args.video], every=4, max_frames=50)
    float_nodes = json.loads(args.float_nodes_from.read_text())["sensitivity"]["selection"]["float_nodes"]
    for name, exclude in (("int8", []), ("mixed", float_nodes)):
        quantize_model(config.model_path, args.dir / f"{name}.onnx", config.input_name, calibration,
                       op_types=["Conv"], nodes_to_exclude=exclude, bias_correction=True, weight_rounding="float")
    shutil.copy(config.model_path, args.dir / "fp32.onnx")
    shutil.copy(args.video, args.dir / "vtest.avi")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Held-out agreement with FP32 of the prepared and the tuned models -> results md/json."""
    from trt_perception.core.io.atomic_write import atomic_write_text
    from trt_perception.core.model_config import load_model_config
    from trt_perception.core.precision.model_frames import detection_decoder, read_frames
    from trt_perception.core.precision.sensitivity import EvalSet, int8_conv_share, onnx_runner
    config = load_model_config(ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml")
    held_out, geometries = read_frames(config, [args.video], every=5, skip=80, max_frames=80)
    fp32 = onnx_runner(config.model_path, config.input_name)
    evalset = EvalSet(config.input_name, held_out, [fp32(t) for t in held_out], detection_decoder(config, geometries))
    models = {"INT8 (start)": args.dir / "int8.onnx", "mixed (start)": args.dir / "mixed.onnx"}
    tuned = [(path.stem.rsplit("_", 1), path) for path in args.tuned.glob("*_qat*.onnx")]
    models.update({path.stem: path for (tag, step), path in sorted(tuned, key=lambda t: (t[0][0], int(t[0][1])))})
    log = json.loads((args.tuned / "qat_log.json").read_text())
    rows = {}
    lines = ["# Quantization-aware fine-tuning (distillation from FP32), SSDLite pedestrian", "",
             f"`benchmarks/qat_finetune.py` (prepare here, train on {log['device']}, evaluate here). Training frames: "
             "vtest.avi 0..399; held out: 79 frames 400..795 every 5th (286 FP32 detections), ONNX Runtime CPU. "
             "Runs (`tag_steps`; lr of INT8 weights in steps / log activation steps / biases): "
             + "; ".join(f"{tag}: from {run['start']}, lr {run['lr']}, {run['seconds']:.0f} s"
                         for tag, run in log["runs"].items()) + ".", "",
             "| model | convs in INT8 | recall | precision | mean IoU | score drift mean abs | output error |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, path in models.items():
        summary = evalset.compare(onnx_runner(path, config.input_name))
        det = summary["detections"]
        int8_convs, convs = int8_conv_share(path)
        rows[name] = {"summary": summary, "int8_convs": int8_convs, "convs": convs}
        lines.append(f"| {name} | {int8_convs}/{convs} | {det['recall']:.3f} | {det['precision']:.3f} | "
                     f"{det['mean_iou']:.3f} | {det['score_drift_mean_abs']:.4f} | {summary['output_error']:.4f} |")
    atomic_write_text(RESULTS / "qat_finetune.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / "qat_finetune.json", json.dumps({"log": log, "models": rows}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "train", "evaluate"))
    parser.add_argument("--dir", type=Path, default=Path("qat_work"), help="prepared models (and video)")
    parser.add_argument("--video", default="/work/shared/data/vtest.avi")
    parser.add_argument("--float-nodes-from", type=Path, default=RESULTS / "mixed_precision_wr_bc_wide.json",
                        help="prepare: the mixed model keeps this result's selected float nodes")
    parser.add_argument("--out", default=None, help="train: output folder (default $OUT)")
    parser.add_argument("--tuned", type=Path, default=Path("qat_out"), help="evaluate: train's output folder")
    args = parser.parse_args()
    return {"prepare": prepare, "train": train, "evaluate": evaluate}[args.step](args)


if __name__ == "__main__":
    raise SystemExit(main())
