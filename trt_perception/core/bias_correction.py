"""Bias correction of INT8 convolutions in a Q/DQ model (empirical, per output channel).

Quantizing a convolution's weights and input shifts the mean of its output: rounding errors do
not average out per output channel. For every quantized ``Conv`` (its activation input read
through QuantizeLinear -> DequantizeLinear, its weights through DequantizeLinear) the mean over
calibration frames, batch and spatial positions of ``quantized conv - float conv`` is measured
per output channel, both convolutions reading the same float activation (the tensor entering
the QuantizeLinear, i.e. the quantized network's own activation) and the float convolution the
original float weights and bias. That mean is subtracted from the convolution's bias (Nagel et
al., "Data-Free Quantization", empirical bias correction). The result is still a plain Q/DQ
model: an INT32 bias behind DequantizeLinear is re-quantized with its own scale, a float bias
replaced, a missing bias added as a float initializer; TensorRT builds it as before (a bias is a
bias). Corrections of all convolutions come from one pass over the frames.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np


def quantized_convs(graph: Any) -> dict[str, tuple[Any, str]]:
    """Conv nodes of a Q/DQ graph whose activation and weights are both quantized:
    name -> (node, float activation tensor entering the QuantizeLinear).
    """
    producer = {out: node for node in graph.node for out in node.output}
    inits = {t.name for t in graph.initializer}
    convs = {}
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        dq_x, dq_w = producer.get(node.input[0]), producer.get(node.input[1])
        if dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" \
                or dq_w.op_type != "DequantizeLinear" or dq_w.input[0] not in inits:
            continue
        q_x = producer.get(dq_x.input[0])
        if q_x is not None and q_x.op_type == "QuantizeLinear":
            convs[node.name] = (node, q_x.input[0])
    return convs


def conv_bias_errors(quantized: Any, float_model: Any, input_name: str,
                     tensors: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Mean output error (quantized - float) per output channel of every quantized Conv of
    ``quantized`` (an ``onnx.ModelProto`` with Q/DQ), over ``tensors`` (model inputs).

    ``float_model``: the float ``onnx.ModelProto`` it was quantized from (same Conv node names);
    its weights and biases are the reference. Returns conv name -> float32[C_out].
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    convs = quantized_convs(quantized.graph)
    float_nodes = {n.name: n for n in float_model.graph.node}
    float_inits = {t.name: t for t in float_model.graph.initializer}
    augmented = onnx.ModelProto()
    augmented.CopyFrom(quantized)
    graph = augmented.graph
    opset = max((o.version for o in augmented.opset_import if o.domain in ("", "ai.onnx")), default=13)
    outputs = {}
    for i, (name, (node, x_float)) in enumerate(sorted(convs.items())):
        original = float_nodes[name]
        inputs = [x_float]
        for j, tensor in enumerate(original.input[1:3], start=1):
            copy = onnx.TensorProto()
            copy.CopyFrom(float_inits[tensor])
            copy.name = f"bias_correction_{i}_{j}"
            graph.initializer.append(copy)
            inputs.append(copy.name)
        reference, diff, mean = (f"bias_correction_{i}_{k}" for k in ("float", "diff", "mean"))
        graph.node.append(helper.make_node("Conv", inputs, [reference], name=reference,
                                           **{a.name: helper.get_attribute_value(a) for a in node.attribute}))
        graph.node.append(helper.make_node("Sub", [node.output[0], reference], [diff], name=diff))
        if opset >= 18:
            graph.initializer.append(numpy_helper.from_array(np.array([0, 2, 3], np.int64), f"{mean}_axes"))
            graph.node.append(helper.make_node("ReduceMean", [diff, f"{mean}_axes"], [mean], name=mean, keepdims=0))
        else:
            graph.node.append(helper.make_node("ReduceMean", [diff], [mean], name=mean, axes=[0, 2, 3],
                                               keepdims=0))
        graph.output.append(helper.make_tensor_value_info(mean, onnx.TensorProto.FLOAT, None))
        outputs[name] = mean
    if not outputs:
        return {}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(augmented.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = list(outputs.values())
    sums = [np.zeros(0, np.float64)] * len(names)
    frames = 0
    for tensor in tensors:
        values = session.run(names, {input_name: tensor})
        sums = [s + v if frames else v.astype(np.float64) for s, v in zip(sums, values)]
        frames += 1
    if frames == 0:
        raise ValueError("no frames for bias correction")
    return {conv: (total / frames).astype(np.float32) for conv, total in zip(outputs, sums)}


def apply_bias_corrections(quantized: Any, errors: Mapping[str, np.ndarray]) -> int:
    """Subtract ``errors[conv]`` from each named Conv's bias in ``quantized`` (an
    ``onnx.ModelProto``, changed in place); returns the convolutions changed.
    """
    from onnx import numpy_helper

    graph = quantized.graph
    producer = {out: node for node in graph.node for out in node.output}
    inits = {t.name: t for t in graph.initializer}
    changed = 0
    for node in graph.node:
        if node.name not in errors:
            continue
        error = errors[node.name].astype(np.float32)
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        dq = producer.get(bias) if bias is not None else None
        if dq is not None and dq.op_type == "DequantizeLinear":
            values, scale = inits[dq.input[0]], numpy_helper.to_array(inits[dq.input[1]])
            current = numpy_helper.to_array(values).astype(np.float64) * scale
            updated = np.round((current - error) / scale).astype(numpy_helper.to_array(values).dtype)
            values.CopyFrom(numpy_helper.from_array(updated, values.name))
        elif bias is not None and bias in inits:
            updated = numpy_helper.to_array(inits[bias]) - error
            inits[bias].CopyFrom(numpy_helper.from_array(updated.astype(np.float32), bias))
        elif bias is None:
            name = f"{node.name}_corrected_bias"
            graph.initializer.append(numpy_helper.from_array(-error, name))
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = name
        else:
            continue
        changed += 1
    return changed
