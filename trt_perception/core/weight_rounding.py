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

*Asymmetric* reconstruction (AdaRound's asymmetric variant, AdaQuant-like): the convolution of
the quantized network reads ``x_hat``, its input as the quantized network computes it (INT8
activations, through the quantized upstream layers), not the float ``x``. Minimizing
``E[(w_q . x_hat - w . x)^2] = w_q^T H_hat w_q - 2 w_q^T C w + const`` with
``H_hat = E[x_hat x_hat^T]`` and ``C = E[x_hat x^T]`` (patches at the same positions of the same
frames) lets the weights compensate part of the input's quantization error as well; the same
coordinate descent on the gradient ``H_hat w_q - C w``, optionally more than one step away from
the float weight (``reach``). With ``x_hat = x`` it is the float-input objective above.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import numpy as np

#: symmetric INT8 weights: [-127, 127] (TensorRT)
WEIGHT_LIMIT = 127


def round_weights(weights: np.ndarray, scales: np.ndarray, moments: np.ndarray, passes: int = 4,
                  cross: Optional[np.ndarray] = None, reach: int = 1) -> np.ndarray:
    """INT8 values (int8, shape of ``weights``) of ``weights`` quantized with ``scales`` that
    (locally) minimize ``w_q^T H w_q - 2 w_q^T C w`` per output channel (``w_q`` = values x scale).

    weights: float ``[C, d]`` (one row per output channel, ``d`` = the inputs of one output).
    scales: ``[C]`` positive steps. moments: ``H``, ``[d, d]`` shared by all channels or
    ``[C, d, d]`` one per channel (symmetric positive semi-definite). cross: ``C`` of the same
    shape (``E[x_hat x^T]``, quantized inputs by float inputs); None: ``C = H``, i.e. the output
    error ``e^T H e`` with ``e = w_q - w``. Starts from nearest rounding and moves single weights
    one step down or up while that lowers the channel's objective, at most ``passes`` sweeps over
    the weights, first within floor and ceiling, then (``reach`` > 1) continuing from there with
    each value less than 2, ..., ``reach`` steps from ``weights / scales``; values stay within
    [-127, 127]. Never worse than nearest rounding, nor than a smaller ``reach``.
    """
    w = np.asarray(weights, np.float64)
    s = np.asarray(scales, np.float64).reshape(-1, 1)
    h = np.asarray(moments, np.float64)
    c = h if cross is None else np.asarray(cross, np.float64)
    if w.ndim != 2 or s.shape[0] != w.shape[0] or h.shape[-2:] != (w.shape[1], w.shape[1]) \
            or h.ndim not in (2, 3) or (h.ndim == 3 and h.shape[0] != w.shape[0]) or c.shape != h.shape:
        raise ValueError(f"need weights [C, d], scales [C] and moments (and cross moments) [d, d] or [C, d, d]; "
                         f"got {w.shape}, {np.shape(scales)}, {h.shape}, {c.shape}")
    if np.any(s <= 0):
        raise ValueError("scales must be positive")
    if reach < 1:
        raise ValueError(f"reach must be >= 1, got {reach}")

    exact = w / s
    q = np.clip(np.round(exact), -WEIGHT_LIMIT, WEIGHT_LIMIT)
    grad = _per_channel(h, q * s) - _per_channel(c, w)  # H w_q - C w per channel
    diag = np.diagonal(h) if h.ndim == 2 else np.diagonal(h, axis1=1, axis2=2)  # [d] or [C, d]
    channels = np.arange(w.shape[0])
    for limit in range(1, reach + 1):  # floor / ceiling first, then each wider range from there
        for _ in range(passes):
            moved = 0
            for i in range(w.shape[1]):
                h_ii = diag[i] if h.ndim == 2 else diag[:, i]
                best_gain, best_step = np.zeros(w.shape[0]), np.zeros(w.shape[0])
                for step in (-1.0, 1.0):
                    delta = step * s[:, 0]
                    gain = 2 * delta * grad[:, i] + delta ** 2 * h_ii
                    ok = (gain < -1e-12 * np.maximum(h_ii, 1e-30) * delta ** 2) & (gain < best_gain) \
                        & (np.abs(q[:, i] + step) <= WEIGHT_LIMIT) & (np.abs(q[:, i] + step - exact[:, i]) < limit)
                    best_gain = np.where(ok, gain, best_gain)
                    best_step = np.where(ok, step, best_step)
                if not best_step.any():
                    continue
                moved += int(np.count_nonzero(best_step))
                q[:, i] += best_step
                d = best_step * s[:, 0]
                grad += d[:, None] * (h[i][None, :] if h.ndim == 2 else h[channels, i, :])
            if not moved:
                break
    return q.astype(np.int8)


def _per_channel(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m v`` for each channel's row of ``v`` ``[C, d]``; ``m`` ``[d, d]`` shared or ``[C, d, d]``."""
    product: np.ndarray = v @ m.T if m.ndim == 2 else np.einsum("cij,cj->ci", m, v)
    return product


def _quadratic(m: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^T m b`` per channel (rows of ``a`` and ``b``)."""
    result: np.ndarray = np.einsum("ci,ci->c", a, _per_channel(np.asarray(m, np.float64), b))
    return result


def reconstruction_error(weights: np.ndarray, scales: np.ndarray, values: np.ndarray, moments: np.ndarray,
                         cross: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``E[(w_q . x_hat - w . x)^2]`` per output channel for INT8 ``values`` (see
    :func:`round_weights`): ``w_q^T H w_q - 2 w_q^T C w + w^T R w`` with ``R = E[x x^T]``
    (``reference``, the float inputs' moments, same shape as ``moments``).
    """
    w = np.asarray(weights, np.float64)
    wq = np.asarray(values, np.float64) * np.asarray(scales, np.float64).reshape(-1, 1)
    error: np.ndarray = _quadratic(moments, wq, wq) - 2 * _quadratic(cross, wq, w) + _quadratic(reference, w, w)
    return error


def output_error(weights: np.ndarray, scales: np.ndarray, values: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """``e^T H e`` per output channel for INT8 ``values`` (see :func:`round_weights`)."""
    e = np.asarray(values, np.float64) * np.asarray(scales, np.float64).reshape(-1, 1) \
        - np.asarray(weights, np.float64)
    return _quadratic(moments, e, e)


class PatchMoments:
    """Accumulates ``H = E[x x^T]`` of a convolution's input patches over frames, and optionally
    the cross moment ``C = E[x y^T]`` with the patches of a reference input ``y`` at the same
    positions.

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
        self.cross_sum: Optional[np.ndarray] = None
        self.with_reference: Optional[bool] = None
        self.count = 0

    def add(self, x: np.ndarray, reference: Optional[np.ndarray] = None) -> None:
        """Add the patches of one input ``x`` ``[N, C_in, H, W]`` (and of ``reference``, same
        shape, to the cross moment; give it with every input or with none).
        """
        if self.with_reference is not None and self.with_reference != (reference is not None):
            raise ValueError("give a reference input with every input or with none")
        self.with_reference = reference is not None
        patches = self._patches(np.asarray(x, np.float64))  # [C, d, P] depthwise, [1, C*d, P] plain
        if patches.shape[-1] == 0:
            return
        moment = patches @ patches.transpose(0, 2, 1)
        self.sum = moment if self.sum is None else self.sum + moment
        if reference is not None:
            ref = self._patches(np.asarray(reference, np.float64))
            if ref.shape != patches.shape:
                raise ValueError(f"reference input of shape {np.shape(reference)} for an input of {np.shape(x)}")
            cross = patches @ ref.transpose(0, 2, 1)
            self.cross_sum = cross if self.cross_sum is None else self.cross_sum + cross
        self.count += patches.shape[-1]

    def moments(self) -> np.ndarray:
        """``H``: ``[C, d, d]`` (depthwise) or ``[d, d]``; raises when nothing was added."""
        return self._mean(self.sum)

    def cross_moments(self) -> np.ndarray:
        """``C = E[x reference^T]``, shaped as :meth:`moments`; raises without reference inputs."""
        return self._mean(self.cross_sum)

    def _mean(self, total: Optional[np.ndarray]) -> np.ndarray:
        if total is None or self.count == 0:
            raise ValueError("no input patches (with reference inputs) were added")
        mean = total / self.count
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


def _exposing(model: Any, names: Iterable[str]) -> Any:
    """An ONNX Runtime CPU session of ``model`` (an ``onnx.ModelProto``, not changed) with the
    tensors ``names`` added to its outputs.
    """
    import onnx
    import onnxruntime as ort

    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    existing = {o.name for o in augmented.graph.output}
    for name in names:
        if name not in existing:
            augmented.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(augmented.SerializeToString(), providers=["CPUExecutionProvider"])


def conv_moments(model: object, input_name: str, tensors: Iterable[np.ndarray],
                 convs: Mapping[str, tuple[str, tuple[int, ...], dict[str, Any]]],
                 reference: Optional[tuple[object, Mapping[str, str]]] = None) -> dict[str, PatchMoments]:
    """The accumulated patch moments of every named convolution's input over ``tensors``, from
    one pass of ``model`` (an ``onnx.ModelProto``) with the convolution inputs exposed as outputs.

    convs: conv name -> (input tensor name in ``model``, weight shape, :class:`PatchMoments`
    keywords: group, strides, dilations, pads). reference: (the float ``onnx.ModelProto``, conv
    name -> its input tensor name there): the cross moments with the float model's inputs of the
    same convolutions on the same frames are accumulated too (:meth:`PatchMoments.cross_moments`).
    """
    sources = {conv: (spec[0],) + ((reference[1][conv],) if reference is not None else ())
               for conv, spec in convs.items()}
    models = [model] + ([reference[0]] if reference is not None else [])
    fetches = [sorted({names[k] for names in sources.values()} - {input_name}) for k in range(len(models))]
    sessions = [_exposing(m, fetch) for m, fetch in zip(models, fetches)]
    accumulators = {conv: PatchMoments(shape, **geometry) for conv, (_, shape, geometry) in convs.items()}
    frames = 0
    for tensor in tensors:
        values = []
        for session, fetch in zip(sessions, fetches):
            found = dict(zip(fetch, session.run(fetch, {input_name: tensor}))) if fetch else {}
            found[input_name] = tensor
            values.append(found)
        for conv, names in sources.items():
            accumulators[conv].add(*(found[name] for found, name in zip(values, names)))
        frames += 1
    if frames == 0:
        raise ValueError("no frames for the weight rounding")
    return accumulators


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


def _eligible_convs(float_model: Any, only: Optional[Iterable[str]] = None) \
        -> dict[str, tuple[np.ndarray, str, dict[str, Any]]]:
    """Conv name -> (float weights, input tensor name, :class:`PatchMoments` geometry) of the 2-D
    plain or depthwise Convs of ``float_model`` with initializer weights (those in ``only``), in
    graph order.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in float_model.graph.initializer}
    wanted = set(only) if only is not None else None
    convs = {}
    for node in float_model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits \
                or (wanted is not None and node.name not in wanted):
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        geometry = conv_geometry(node)
        if w.ndim == 4 and geometry is not None \
                and (geometry["group"] == 1 or (geometry["group"] == w.shape[0] and w.shape[1] == 1)):
            convs[node.name] = (w, node.input[0], geometry)
    return convs


def _upstream_convs(graph: Any, names: Iterable[str]) -> dict[str, set[str]]:
    """Each named node -> the named nodes its inputs depend on (transitively) in ``graph``
    (whose nodes are in topological order, as ONNX requires).
    """
    wanted = set(names)
    above: dict[str, set[str]] = {}  # tensor -> the named nodes it depends on
    result = {}
    for node in graph.node:
        deps: set[str] = set().union(*(above.get(t, set()) for t in node.input if t))
        if node.name in wanted:
            result[node.name] = deps
            deps = deps | {node.name}
        for out in node.output:
            above[out] = deps
    return result


def _channel_rounding(w: np.ndarray, moments: PatchMoments, passes: int, reach: int,
                      cross: bool) -> tuple[np.ndarray, np.ndarray]:
    """(INT8 values shaped as ``w``, per-channel scales ``max|w| / 127``) of one convolution."""
    flat = w.reshape(w.shape[0], -1).astype(np.float64)
    absmax = np.abs(flat).max(axis=1)
    scales = np.where(absmax > 0, absmax / WEIGHT_LIMIT, 1.0)
    values = round_weights(flat, scales, moments.moments(), passes,
                           cross=moments.cross_moments() if cross else None, reach=reach)
    return values.reshape(w.shape), scales


def rounded_weights(float_model: object, input_name: str, tensors: Iterable[np.ndarray],
                    passes: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Conv name -> (INT8 values from :func:`round_weights`, per-channel scales ``max|w| / 127``)
    for every 2-D plain or depthwise Conv of the float ``float_model`` (an ``onnx.ModelProto``
    whose convolution weights are initializers), ``H`` from its own activations on ``tensors``.
    """
    convs = _eligible_convs(float_model)
    moments = conv_moments(float_model, input_name, tensors,
                           {name: (source, tuple(w.shape), geometry) for name, (w, source, geometry) in convs.items()})
    return {name: _channel_rounding(w, moments[name], passes, 1, cross=False) for name, (w, _, _) in convs.items()}


def asymmetric_rounded_weights(float_model: object, quantized: object, input_name: str,
                               tensors: Iterable[np.ndarray], passes: int = 4,
                               reach: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """As :func:`rounded_weights`, for the quantized convolutions of ``quantized`` (a Q/DQ
    ``onnx.ModelProto`` quantized from ``float_model``, same Conv names; not changed) with the
    asymmetric reconstruction (``H_hat``, ``C``: the inputs its convolutions read, dequantized,
    against the float model's on the same frames; ``reach``: see :func:`round_weights`).

    Sequential, as AdaRound rounds layer by layer: a convolution is rounded once every quantized
    convolution upstream of it has been, from inputs computed with those roundings applied (one
    pass of both models over ``tensors`` per *wave*: the convolutions whose upstream ones are all
    done), so it compensates the error that reaches it, not one its predecessors removed since.
    """
    import onnx

    from trt_perception.core.bias_correction import quantized_convs

    frames = list(tensors)
    targets = quantized_convs(quantized.graph)  # type: ignore[attr-defined]
    convs = _eligible_convs(float_model, targets)
    upstream = _upstream_convs(quantized.graph, convs)  # type: ignore[attr-defined]
    current = onnx.ModelProto()
    current.CopyFrom(quantized)
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    remaining = list(convs)
    while remaining:
        pending = set(remaining)
        wave = [name for name in remaining if not upstream[name] & pending]
        specs = {name: (targets[name][0].input[0], tuple(convs[name][0].shape), convs[name][2]) for name in wave}
        moments = conv_moments(current, input_name, frames, specs,
                               reference=(float_model, {name: convs[name][1] for name in wave}))
        done = {name: _channel_rounding(convs[name][0], moments[name], passes, reach, cross=True) for name in wave}
        apply_weight_rounding(current, done)
        result.update(done)
        remaining = [name for name in remaining if name not in done]
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
