"""Weight rounding for INT8 convolutions that minimizes the output error, not the weight error.

Rounding each weight to its nearest INT8 step minimizes ``|w_q - w|`` weight by weight, but a
convolution's output error for an input patch ``x`` is ``(w_q - w) . x``: over real inputs,
whose neighbouring values are strongly correlated (a smooth image region reaches a 3x3
depthwise kernel as nearly the same value nine times), the rounding errors of one output
channel add up instead of averaging out. Measured on the SSDLite pedestrian model: the first
depthwise convolution's nearest-rounded weights (0.5 % weight error per channel) alone cause
most of the full INT8 model's weight-induced output error (``docs/tensorrt.md``).

Here each output channel's rounding is chosen, weight by weight, between the two INT8 steps
around the float weight (floor or ceiling: the scale and the weight range stay those of
per-channel min-max quantization) to minimize the expected squared output error
``e^T H e`` with ``e = w_q - w`` and ``H = E[x x^T]`` the second moment of the channel's input
patches over calibration frames (the objective of AdaRound, Nagel et al. 2020, solved by greedy
coordinate descent instead of a learned relaxation). Only the INT8 weight values change: the
model stays an ordinary Q/DQ ONNX (per-channel symmetric INT8 weights, same scales), which
TensorRT builds as before.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import numpy as np

#: symmetric INT8 weights: [-127, 127] (TensorRT)
WEIGHT_LIMIT = 127


def round_weights(weights: np.ndarray, scales: np.ndarray, moments: np.ndarray, passes: int = 4) -> np.ndarray:
    """INT8 values (int8, shape of ``weights``) of ``weights`` quantized with ``scales``, each
    rounded down or up so that ``e^T H e`` per output channel is (locally) smallest.

    weights: float ``[C, d]`` (one row per output channel, ``d`` = the inputs of one output).
    scales: ``[C]`` positive steps. moments: ``H``, ``[d, d]`` shared by all channels or
    ``[C, d, d]`` one per channel (symmetric positive semi-definite). Starts from nearest rounding
    and flips single weights to their other rounding while that lowers the channel's error, at
    most ``passes`` sweeps over the weights; never worse than nearest rounding.
    """
    w = np.asarray(weights, np.float64)
    s = np.asarray(scales, np.float64).reshape(-1, 1)
    h = np.asarray(moments, np.float64)
    if w.ndim != 2 or s.shape[0] != w.shape[0] or h.shape[-2:] != (w.shape[1], w.shape[1]) \
            or h.ndim not in (2, 3) or (h.ndim == 3 and h.shape[0] != w.shape[0]):
        raise ValueError(f"need weights [C, d], scales [C] and moments [d, d] or [C, d, d]; got {w.shape}, "
                         f"{np.shape(scales)}, {h.shape}")
    if np.any(s <= 0):
        raise ValueError("scales must be positive")
    q = np.clip(np.round(w / s), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    err = q * s - w
    grad = err @ h if h.ndim == 2 else np.einsum("cij,cj->ci", h, err)  # H e per channel
    diag = np.diagonal(h) if h.ndim == 2 else np.diagonal(h, axis1=1, axis2=2)  # [d] or [C, d]
    channels = np.arange(w.shape[0])
    for _ in range(passes):
        flipped = 0
        for i in range(w.shape[1]):
            # the other rounding of weight i: one step against its current error
            step = np.where(err[:, i] > 0, -1.0, 1.0)
            new_q = q[:, i] + step
            delta = step * s[:, 0]
            h_ii = diag[i] if h.ndim == 2 else diag[:, i]
            gain = 2 * delta * grad[:, i] + delta ** 2 * h_ii
            ok = (gain < -1e-12 * np.maximum(h_ii, 1e-30) * delta ** 2) & (np.abs(new_q) <= WEIGHT_LIMIT) \
                & (np.abs(err[:, i] + delta) < s[:, 0] * (1 + 1e-9))
            if not ok.any():
                continue
            flipped += int(ok.sum())
            d = np.where(ok, delta, 0.0)
            q[:, i] += np.where(ok, step, 0.0)
            err[:, i] += d
            grad += d[:, None] * (h[i][None, :] if h.ndim == 2 else h[channels, i, :])
        if not flipped:
            break
    return q.astype(np.int8)


def output_error(weights: np.ndarray, scales: np.ndarray, values: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """``e^T H e`` per output channel for INT8 ``values`` (see :func:`round_weights`)."""
    e = np.asarray(values, np.float64) * np.asarray(scales, np.float64).reshape(-1, 1) \
        - np.asarray(weights, np.float64)
    h = np.asarray(moments, np.float64)
    errors: np.ndarray = np.einsum("ci,ci->c", e @ h if h.ndim == 2 else np.einsum("cij,cj->ci", h, e), e)
    return errors


class PatchMoments:
    """Accumulates ``H = E[x x^T]`` of a convolution's input patches over frames.

    weight_shape: ``[C_out, C_in / group, kh, kw]``; ``group`` 1 (one ``H`` of size
    ``C_in kh kw``) or ``C_in == C_out`` (depthwise: one ``kh kw`` ``H`` per channel); strides,
    dilations and zero padding (ONNX ``pads``: top, left, bottom, right) as the convolution's; at
    most ``max_positions`` output positions per frame, evenly spaced.
    """

    def __init__(self, weight_shape: Iterable[int], group: int = 1, strides: Iterable[int] = (1, 1),
                 dilations: Iterable[int] = (1, 1), pads: Iterable[int] = (0, 0, 0, 0),
                 max_positions: int = 4096) -> None:
        c_out, c_in_per_group, kh, kw = (int(v) for v in weight_shape)
        self.depthwise = group > 1
        if self.depthwise and (c_in_per_group != 1 or group != c_out):
            raise ValueError(f"only plain (group 1) and depthwise convolutions, got group {group} for weights "
                             f"{[c_out, c_in_per_group, kh, kw]}")
        self.kernel = (kh, kw)
        self.strides = tuple(int(v) for v in strides)
        self.dilations = tuple(int(v) for v in dilations)
        self.pads = tuple(int(v) for v in pads)
        self.max_positions = max_positions
        self.sum: Optional[np.ndarray] = None
        self.count = 0

    def add(self, x: np.ndarray) -> None:
        """Add the patches of one input ``x`` ``[N, C_in, H, W]``."""
        patches = self._patches(np.asarray(x, np.float64))  # [C, d, P] depthwise, [1, C*d, P] plain
        if patches.shape[-1] == 0:
            return
        moment = np.einsum("cip,cjp->cij", patches, patches)
        self.sum = moment if self.sum is None else self.sum + moment
        self.count += patches.shape[-1]

    def moments(self) -> np.ndarray:
        """``H``: ``[C, d, d]`` (depthwise) or ``[d, d]``; raises when nothing was added."""
        if self.sum is None or self.count == 0:
            raise ValueError("no input patches were added")
        mean = self.sum / self.count
        return mean if self.depthwise else mean[0]

    def _patches(self, x: np.ndarray) -> np.ndarray:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.strides, self.dilations
        top, left, bottom, right = self.pads
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        n, c, height, width = x.shape
        out_h = (height - dh * (kh - 1) - 1) // sh + 1
        out_w = (width - dw * (kw - 1) - 1) // sw + 1
        if out_h <= 0 or out_w <= 0:
            return np.zeros((c, kh * kw, 0))
        keep = max(1, int(np.ceil(np.sqrt(out_h * out_w / self.max_positions))))
        rows = np.arange(0, out_h, keep) * sh
        cols = np.arange(0, out_w, keep) * sw
        taps = [x[:, :, rows[:, None] + i * dh, cols[None, :] + j * dw] for i in range(kh) for j in range(kw)]
        stacked = np.stack(taps, axis=2)  # [N, C, kh*kw, R, S]
        patches = stacked.transpose(1, 2, 0, 3, 4).reshape(c, kh * kw, -1)  # [C, d, P]
        return patches if self.depthwise else patches.reshape(1, c * kh * kw, -1)


def conv_moments(model: object, input_name: str, tensors: Iterable[np.ndarray],
                 convs: Mapping[str, tuple[str, tuple[int, ...], dict[str, Any]]]) -> dict[str, np.ndarray]:
    """``H`` of every named convolution's input over ``tensors``, from one pass of the float
    ``model`` (an ``onnx.ModelProto``) with the convolution inputs exposed as outputs.

    convs: conv name -> (input tensor name, weight shape, :class:`PatchMoments` keywords: group,
    strides, dilations, pads).
    """
    import onnx
    import onnxruntime as ort

    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    existing = {o.name for o in augmented.graph.output}
    inputs = sorted({spec[0] for spec in convs.values()})
    for name in inputs:
        if name not in existing and name != input_name:
            augmented.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    fetch = [name for name in inputs if name != input_name]
    accumulators = {conv: PatchMoments(shape, **geometry) for conv, (_, shape, geometry) in convs.items()}
    session = ort.InferenceSession(augmented.SerializeToString(), providers=["CPUExecutionProvider"])
    frames = 0
    for tensor in tensors:
        values = dict(zip(fetch, session.run(fetch, {input_name: tensor}))) if fetch else {}
        values[input_name] = tensor
        for conv, (source, *_) in convs.items():
            accumulators[conv].add(values[source])
        frames += 1
    if frames == 0:
        raise ValueError("no frames for the weight rounding")
    return {conv: acc.moments() for conv, acc in accumulators.items()}


def conv_geometry(node: object) -> Optional[dict[str, Any]]:
    """:class:`PatchMoments` keywords (group, strides, dilations, pads) of a 2-D ONNX Conv node;
    None where ``auto_pad`` is set (not resolved here).
    """
    from onnx import helper
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}  # type: ignore[attr-defined]
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    return {"group": int(attrs.get("group", 1)), "strides": tuple(attrs.get("strides", (1, 1))),
            "dilations": tuple(attrs.get("dilations", (1, 1))), "pads": tuple(attrs.get("pads", (0, 0, 0, 0)))}


def rounded_weights(float_model: object, input_name: str, tensors: Iterable[np.ndarray],
                    passes: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Conv name -> (INT8 values from :func:`round_weights`, per-channel scales ``max|w| / 127``)
    for every 2-D plain or depthwise Conv of the float ``float_model`` (an ``onnx.ModelProto``
    whose convolution weights are initializers), ``H`` from its own activations on ``tensors``.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in float_model.graph.initializer}  # type: ignore[attr-defined]
    convs = {}
    weights = {}
    for node in float_model.graph.node:  # type: ignore[attr-defined]
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        geometry = conv_geometry(node)
        if w.ndim != 4 or geometry is None \
                or not (geometry["group"] == 1 or (geometry["group"] == w.shape[0] and w.shape[1] == 1)):
            continue
        convs[node.name] = (node.input[0], tuple(w.shape), geometry)
        weights[node.name] = w
    moments = conv_moments(float_model, input_name, tensors, convs)
    result = {}
    for name, w in weights.items():
        flat = w.reshape(w.shape[0], -1).astype(np.float64)
        absmax = np.abs(flat).max(axis=1)
        scales = np.where(absmax > 0, absmax / WEIGHT_LIMIT, 1.0)
        result[name] = (round_weights(flat, scales, moments[name], passes).reshape(w.shape), scales)
    return result


def apply_weight_rounding(quantized: object, rounded: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Replace the INT8 weights of the quantized convolutions of ``quantized`` (a Q/DQ
    ``onnx.ModelProto``, changed in place) with ``rounded`` ones (:func:`rounded_weights`) where
    the weight scales agree; returns the convolutions changed.
    """
    from onnx import numpy_helper

    from trt_perception.core.bias_correction import quantized_convs

    graph = quantized.graph  # type: ignore[attr-defined]
    producer = {out: node for node in graph.node for out in node.output}
    inits = {t.name: t for t in graph.initializer}
    changed = 0
    for name, (node, _) in quantized_convs(graph).items():
        if name not in rounded:
            continue
        values, scales = rounded[name]
        dq = producer[node.input[1]]
        current = inits[dq.input[0]]
        model_scales = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64).reshape(-1)
        if numpy_helper.to_array(current).shape != values.shape or model_scales.shape != scales.shape \
                or not np.allclose(model_scales, scales, rtol=1e-5):
            continue
        current.CopyFrom(numpy_helper.from_array(values.astype(np.int8), current.name))
        changed += 1
    return changed


def save_rounded(path: object, rounded: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write :func:`rounded_weights`' result to ``path`` (npz, atomically)."""
    import io
    from pathlib import Path

    from trt_perception.core.io.atomic_write import atomic_write_bytes
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {}
    for i, (name, (values, scales)) in enumerate(sorted(rounded.items())):
        arrays[f"name_{i}"] = np.array(name)
        arrays[f"values_{i}"] = values
        arrays[f"scales_{i}"] = scales
    np.savez(buffer, **arrays)
    atomic_write_bytes(Path(str(path)), buffer.getvalue())


def load_rounded(path: object) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read what :func:`save_rounded` wrote."""
    with np.load(str(path)) as data:
        count = sum(1 for key in data.files if key.startswith("name_"))
        return {str(data[f"name_{i}"]): (data[f"values_{i}"], data[f"scales_{i}"]) for i in range(count)}
