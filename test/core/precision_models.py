"""Tiny ONNX models built with onnx.helper for the precision tests (no files shipped)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(nodes, inits, path, x_shape=(1, 3, 8, 8), y_shape=(1, 4, 8, 8)):
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def chain_model(path, fragile=None, seed=0, blow_up=None):
    """x[1,3,8,8] -> conv_a(8) -> relu_a -> conv_b(8) -> relu_b -> conv_c(8) -> relu_c -> conv_d(4) -> y.

    ``fragile`` ("conv_b", "conv_c" or "conv_d"): the input of that conv gets an outlier channel
    (a constant 1000 from a bias) that its own weights ignore: with min/max calibration its INT8
    scale becomes ~8 and the other channels (|x| ~ 1) quantize to zero, so quantizing that
    conv's input destroys the output while every other conv quantizes well.
    ``blow_up`` (a conv name): that conv's weights are scaled by 1e6, so its output (and
    everything after) exceeds FP16's range.
    """
    rng = np.random.default_rng(seed)
    inits, nodes = {}, []
    previous, channels = "x", 3
    names = ["conv_a", "conv_b", "conv_c", "conv_d"]
    for i, name in enumerate(names):
        out_channels = 4 if name == "conv_d" else 8
        w = rng.normal(0, 0.5 / np.sqrt(channels), (out_channels, channels, 1, 1)).astype(np.float32)
        b = np.zeros(out_channels, np.float32)
        if i + 1 < len(names) and names[i + 1] == fragile:
            b[-1] = 1000.0       # this conv's output channel 7 is an outlier...
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
    return save(nodes, inits, path)


def frames(n, seed=1, shape=(1, 3, 8, 8)):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(n)]
