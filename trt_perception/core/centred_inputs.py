"""Centred convolution inputs: the full INT8 range for activations bounded on both sides.

TensorRT quantizes activations symmetrically (zero point 0), so an INT8 activation step is
``max|x| / 127``. Most convolutions of a MobileNet read a ReLU6 output (``Clip`` to [0, 6]): the
values are never negative, half of the 255 codes go unused and the step is twice what the range
needs. Shifting such an input by the middle of its bounds, ``x' = x - m`` with ``m = (lo + hi) / 2``,
puts it in [-3, 3] and halves the step (and the rounding error) at the same symmetric INT8. The
shift is folded into the convolution, so the float model computes the same function:

    conv(x, w) + b = conv(x', w) + (b + m * sum(w))   (per output channel; sum over inputs and taps)

This holds where the convolution reads no padding: a padded convolution would pad ``x'`` with
zeros, i.e. ``x`` with ``m``. Such a convolution gets an explicit ``Pad`` (value 0, of ``x``)
before the shift and loses its own padding. The rewritten graph per centred convolution:
``Clip -> [Pad ->] Sub(m) -> Conv(pads 0, bias + m * sum(w))``; quantizing it puts the Q/DQ pair
between ``Sub`` and ``Conv`` (TensorRT fuses the pointwise ``Sub`` into the producer's
epilogue where it can; its cost is measured on the GPU only).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def centre_bounded_inputs(model: Any) -> list[str]:
    """Rewrite every ``Conv`` of ``model`` (an ``onnx.ModelProto``, changed in place) whose data
    input is produced by a ``Clip`` with constant finite bounds ``lo < hi`` to read the input
    minus ``(lo + hi) / 2``, the shift folded into its bias (module docstring). Convolutions with
    an ``auto_pad`` other than ``NOTSET`` or a non-constant weight are left as they are.
    Returns the names of the convolutions changed. The float model's outputs stay the same up to
    float32 rounding.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    nodes, changed = [], []
    for node in graph.node:
        middle = _clip_middle(producer.get(node.input[0]), inits) if node.op_type == "Conv" else None
        attrs = {a.name: a for a in node.attribute}
        auto_pad = helper.get_attribute_value(attrs["auto_pad"]).decode() if "auto_pad" in attrs else "NOTSET"
        if middle is None or node.input[1] not in inits or auto_pad != "NOTSET":
            nodes.append(node)
            continue
        source = node.input[0]
        pads = list(attrs["pads"].ints) if "pads" in attrs else []
        if any(pads):
            half = len(pads) // 2  # [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over the spatial axes
            pad_name = f"{node.name}/centre_pads"
            graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, *pads[:half], 0, 0, *pads[half:]], np.int64), pad_name))
            nodes.append(helper.make_node("Pad", [source, pad_name], [f"{node.name}/centre_padded"],
                                          name=f"{node.name}/centre_pad", mode="constant"))
            source = f"{node.name}/centre_padded"
            attrs["pads"].ints[:] = [0] * len(pads)
        middle_name = f"{node.name}/centre_value"
        graph.initializer.append(numpy_helper.from_array(np.array(middle, np.float32), middle_name))
        nodes.append(helper.make_node("Sub", [source, middle_name], [f"{node.name}/centred"],
                                      name=f"{node.name}/centre"))
        node.input[0] = f"{node.name}/centred"
        weights = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        shift = middle * weights.reshape(weights.shape[0], -1).sum(axis=1)
        if len(node.input) > 2 and node.input[2]:
            bias = inits[node.input[2]]
            bias.CopyFrom(numpy_helper.from_array(
                (numpy_helper.to_array(bias).astype(np.float64) + shift).astype(np.float32), bias.name))
        else:
            bias_name = f"{node.name}/centre_bias"
            graph.initializer.append(numpy_helper.from_array(shift.astype(np.float32), bias_name))
            if len(node.input) > 2:
                node.input[2] = bias_name
            else:
                node.input.append(bias_name)
        nodes.append(node)
        changed.append(node.name)
    del graph.node[:]
    graph.node.extend(nodes)
    return changed


def _clip_middle(clip: Any, inits: dict[str, Any]) -> float | None:
    """The middle of a ``Clip`` node's constant bounds, None when it has no two finite ones."""
    from onnx import numpy_helper
    if clip is None or clip.op_type != "Clip" or len(clip.input) != 3 \
            or clip.input[1] not in inits or clip.input[2] not in inits:
        return None
    low, high = (float(numpy_helper.to_array(inits[name])) for name in clip.input[1:3])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        return None
    return (low + high) / 2
