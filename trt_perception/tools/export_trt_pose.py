"""``trt-perception export-trt-pose``: a trt_pose checkpoint -> ONNX model + model config YAML.

Builds ``resnet18_baseline_att`` or ``densenet121_baseline_att`` with trt_pose's model code (C
confidence-map and 2L PAF channels from the topology), loads the ``.pth`` weights, exports it with
input ``input`` float32[1, 3, S, S] and outputs ``cmap`` float32[1, C, S/4, S/4] and ``paf``
float32[1, 2L, S/4, S/4], checks the ONNX file with ONNX Runtime against PyTorch, and writes next
to it ``<name>.topology.json`` and ``<name>.yaml`` (task: pose, trt_pose's preprocessing: RGB,
ImageNet mean/std in uint8 units, stretch). torch and trt_pose are imported only when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trt_perception.core.decode.pose import COCO18, Topology, load_topology
from trt_perception.core.io.atomic_write import atomic_write_text

MODELS = ("resnet18_baseline_att", "densenet121_baseline_att")
SIZES = (224, 256)
#: trt_pose's input normalization (torchvision ImageNet mean/std) in uint8 units, RGB order
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


class ExportError(RuntimeError):
    """The export cannot go on, with a reason a user can act on."""


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``export-trt-pose`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "export-trt-pose", help="export a trt_pose checkpoint to ONNX with a model config",
        description="Export a trt_pose pose model (PyTorch .pth weights) to ONNX (input 'input', "
                    "outputs 'cmap' and 'paf') and write a matching model config YAML next to it. "
                    "Needs torch, torchvision and trt_pose installed.")
    parser.add_argument("--model", required=True, choices=MODELS, help="trt_pose model name")
    parser.add_argument("--weights", required=True, help="trt_pose checkpoint (.pth state dict)")
    parser.add_argument("--size", required=True, type=int, choices=SIZES, help="input width = height")
    parser.add_argument("--onnx", required=True, help="output ONNX file (.onnx)")
    parser.add_argument("--topology", help="topology JSON the model was trained with "
                                           "(default: COCO 18 parts, trt_pose's human_pose.json)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.set_defaults(func=run)


def model_config(onnx_name: str, size: int, topology_name: str) -> dict[str, Any]:
    """The model config mapping for an exported model (see :mod:`trt_perception.core.model_config`)."""
    return {
        "task": "pose",
        "model": onnx_name,
        "input": "input",
        "outputs": {"cmap": "cmap", "paf": "paf"},
        "preprocess": {"width": size, "height": size, "resize": "stretch", "color_order": "rgb",
                       "mean": list(MEAN), "std": list(STD), "layout": "nchw", "dtype": "float32"},
        "decoder": {"topology": topology_name},
    }


def write_model_config(onnx_path: Path, size: int, topology: Topology) -> Path:
    """Write ``<stem>.topology.json`` and ``<stem>.yaml`` next to ``onnx_path``; returns the YAML path."""
    topology_path = onnx_path.with_name(onnx_path.stem + ".topology.json")
    atomic_write_text(topology_path, json.dumps(topology.to_coco_category()) + "\n")
    config_path = onnx_path.with_suffix(".yaml")
    text = yaml.safe_dump(model_config(onnx_path.name, size, topology_path.name), sort_keys=False)
    atomic_write_text(config_path, f"# exported by trt-perception export-trt-pose\n{text}")
    return config_path


def export_onnx(model: Any, size: int, onnx_path: Path, opset: int = 13) -> float:
    """Export a torch module returning (cmap, paf) for a [1, 3, size, size] input; check the file
    with ONNX Runtime on a random input and return the largest absolute difference to PyTorch.
    """
    import onnxruntime
    import torch

    model = model.eval()
    example = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 4.0 - 2.0
    with torch.no_grad():
        expected = [t.numpy() for t in model(example)]
    if len(expected) != 2:
        raise ExportError(f"the model returns {len(expected)} outputs; expected 2 (cmap, paf)")
    tmp = onnx_path.with_name(f".{onnx_path.name}.export.tmp")
    try:
        torch.onnx.export(model, (example,), str(tmp), input_names=["input"],
                          output_names=["cmap", "paf"], opset_version=opset, dynamo=False)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(["cmap", "paf"], {"input": example.numpy()})
        for name, want, have in zip(("cmap", "paf"), expected, got):
            if want.shape != have.shape:
                raise ExportError(f"ONNX output {name} has shape {list(have.shape)}, PyTorch {list(want.shape)}")
        diff = max(float(np.max(np.abs(w - h))) for w, h in zip(expected, got))
        tmp.replace(onnx_path)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def _build_trt_pose_model(name: str, weights: Path, topology: Topology) -> Any:
    try:
        import torch
        import trt_pose.models
    except ImportError as exc:
        raise ExportError(f"export-trt-pose needs torch, torchvision and trt_pose ({exc}); install "
                          f"them (see models/trt_pose/README.md)") from exc
    model = getattr(trt_pose.models, name)(topology.num_parts, 2 * topology.num_links, pretrained=False)
    try:
        state = torch.load(str(weights), map_location="cpu")
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise ExportError(f"cannot load {weights} into {name} with {topology.num_parts} parts and "
                          f"{topology.num_links} links: {exc}") from exc
    return model


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception export-trt-pose`` with the parsed ``args``; returns the process exit status."""
    try:
        weights, onnx_path = Path(args.weights), Path(args.onnx)
        if not weights.is_file():
            raise ExportError(f"--weights {weights} does not exist")
        if onnx_path.suffix != ".onnx":
            raise ExportError(f"--onnx must end in .onnx, got {onnx_path}")
        if not 7 <= args.opset <= 21:
            raise ExportError(f"--opset must be in 7..21, got {args.opset}")
        topology = load_topology(args.topology) if args.topology else COCO18
        model = _build_trt_pose_model(args.model, weights, topology)
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        diff = export_onnx(model, args.size, onnx_path, args.opset)
        config_path = write_model_config(onnx_path, args.size, topology)
    except (ExportError, ValueError) as exc:
        print(f"export-trt-pose: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.model} {args.size}x{args.size} -> {onnx_path} (ONNX Runtime vs PyTorch: "
          f"max abs difference {diff:.2e}); config {config_path}")
    return 0
