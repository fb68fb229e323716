"""Tiny ONNX models built with ``onnx.helper`` for the precision and quantization tests (no files
shipped), and random input frames for them.

Every model has one float32 input ``x`` (NCHW) and one float32 output ``y``, opset 13 and IR
version 8 (what the shipped models use; ONNX Runtime reads up to its own maximum).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from onnx import NodeProto

PathLike = Union[str, Path]
CHAIN_CONVS = ("conv_a", "conv_b", "conv_c", "conv_d")


def save_model(nodes: Sequence["NodeProto"], initializers: Mapping[str, np.ndarray], path: PathLike,
               x_shape: Sequence[int] = (1, 3, 8, 8), y_shape: Sequence[int] = (1, 4, 8, 8)) -> Path:
    """Write the graph of ``nodes`` (``onnx.NodeProto``) with ``initializers`` (name -> array) to
    ``path``; returns the path.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(list(nodes), "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
                              initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def conv_model(path: PathLike, seed: int = 0) -> Path:
    """Two convolutions: x float32[1,3,16,16] -> Conv 3x3 (8, bias) ``conv1`` -> Relu -> Conv 1x1
    (4) ``conv2`` -> y float32[1,4,16,16].
    """
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
             "b1": rng.normal(0, 0.1, 8).astype(np.float32),
             "w2": rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2")]
    return save_model(nodes, inits, path, (1, 3, 16, 16), (1, 4, 16, 16))


def residual_model(path: PathLike, seed: int = 0) -> Path:
    """A residual block: x float32[1,3,8,8] -> Conv 1x1 (4) ``conv_a`` -> Relu ``relu_a`` (tensor
    ``t``) -> Conv 1x1 (4) ``conv_b`` (tensor ``u``) -> Add ``add`` (t + u) -> y float32[1,4,8,8];
    ``t`` feeds both ``conv_b`` and ``add``.
    """
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits = {"w_a": rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32),
             "w_b": rng.normal(0, 0.5, (4, 4, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w_a"], ["a"], name="conv_a"),
             helper.make_node("Relu", ["a"], ["t"], name="relu_a"),
             helper.make_node("Conv", ["t", "w_b"], ["u"], name="conv_b"),
             helper.make_node("Add", ["t", "u"], ["y"], name="add")]
    return save_model(nodes, inits, path, (1, 3, 8, 8), (1, 4, 8, 8))


def chain_model(path: PathLike, fragile: Optional[str] = None, seed: int = 0, blow_up: Optional[str] = None,
                fragility: float = 1000.0) -> Path:
    """x[1,3,8,8] -> conv_a(8) -> relu_a -> conv_b(8) -> relu_b -> conv_c(8) -> relu_c -> conv_d(4) -> y.

    ``fragile`` (``conv_b``, ``conv_c`` or ``conv_d``): the input of that conv gets an outlier
    channel (a constant ``fragility`` from a bias) that its own weights ignore: with min/max
    calibration its INT8 scale becomes ~``fragility`` / 127 and the other channels (|x| ~ 1)
    quantize to zero (or to a few levels, for a small ``fragility``), so quantizing that conv's
    input damages the output while every other conv quantizes well.
    ``blow_up`` (a conv name): that conv's weights are scaled by 1e6, so its output (and
    everything after) exceeds FP16's range.
    """
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits: dict[str, np.ndarray] = {}
    nodes: list["NodeProto"] = []
    previous, channels = "x", 3
    for i, name in enumerate(CHAIN_CONVS):
        out_channels = 4 if name == "conv_d" else 8
        w = rng.normal(0, 0.5 / np.sqrt(channels), (out_channels, channels, 1, 1)).astype(np.float32)
        b = np.zeros(out_channels, np.float32)
        if i + 1 < len(CHAIN_CONVS) and CHAIN_CONVS[i + 1] == fragile:
            b[-1] = fragility    # this conv's output channel 7 is an outlier...
        if name == fragile:
            w[:, -1] = 0.0       # ...which the fragile conv ignores
        if name == blow_up:
            w *= 1e6
        inits[f"w_{name}"], inits[f"b_{name}"] = w, b
        out = "y" if name == "conv_d" else f"{name}_out"
        nodes.append(helper.make_node("Conv", [previous, f"w_{name}", f"b_{name}"], [out], name=name))
        if name != "conv_d":
            nodes.append(helper.make_node("Relu", [out], [f"relu_{name[-1]}"], name=f"relu_{name[-1]}"))
            previous = f"relu_{name[-1]}"
        channels = out_channels
    return save_model(nodes, inits, path)


def relu6_model(path: PathLike, seed: int = 0) -> Path:
    """A MobileNet-like chain of bounded activations: x float32[1,3,16,16] -> Conv 3x3 (8, bias,
    pads 1) ``conv1`` -> Clip [0, 6] -> Conv 3x3 (8, bias, pads 1) ``conv2`` -> Clip [0, 6] ->
    Conv 1x1 (4, no bias) ``conv3`` -> y float32[1,4,16,16]. With inputs in [-1, 1) the ReLU6
    outputs fill [0, 6].
    """
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(0, 1.0, (8, 3, 3, 3)).astype(np.float32),
             "b1": rng.normal(1, 0.5, 8).astype(np.float32),
             "w2": rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32),
             "b2": rng.normal(1, 0.5, 8).astype(np.float32),
             "w3": rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32),
             "low": np.array(0.0, np.float32), "high": np.array(6.0, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Clip", ["c1", "low", "high"], ["r1"], name="relu6_1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Clip", ["c2", "low", "high"], ["r2"], name="relu6_2"),
             helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3")]
    return save_model(nodes, inits, path, (1, 3, 16, 16), (1, 4, 16, 16))


def random_frames(n: int, seed: int = 1, shape: Sequence[int] = (1, 3, 8, 8)) -> list[np.ndarray]:
    """``n`` float32 tensors of ``shape``, uniform in [-1, 1), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, tuple(shape)).astype(np.float32) for _ in range(n)]


def rounding_bias_model(path: PathLike) -> Path:
    """Convolutions whose INT8 weights shift every output channel's mean: x float32[1,3,16,16] ->
    Relu -> Conv 3x3 (4, bias) ``conv1`` -> Relu -> Conv 1x1 (4, no bias) ``conv2`` -> y
    float32[1,4,16,16]. Per output channel one weight sets the symmetric scale (127 steps) and
    all others sit at 0.6 steps, so INT8 rounds them all up by 0.4 steps (a planted bias error
    on non-negative inputs; per-channel weight quantization as :func:`~trt_perception.core.quantize.quantize_model`).
    """
    from onnx import helper
    step = 0.01

    def planted(shape: tuple[int, ...]) -> np.ndarray:
        weights = np.full(shape, 0.6 * step, np.float32)
        weights.reshape(shape[0], -1)[:, 0] = 127 * step
        return weights

    inits = {"w1": planted((4, 3, 3, 3)), "b1": np.linspace(-0.2, 0.2, 4).astype(np.float32),
             "w2": planted((4, 4, 1, 1))}
    nodes = [helper.make_node("Relu", ["x"], ["rx"], name="relu0"),
             helper.make_node("Conv", ["rx", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2")]
    return save_model(nodes, inits, path, (1, 3, 16, 16), (1, 4, 16, 16))
