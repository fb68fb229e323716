"""Make the batch dimension of an ONNX image model dynamic (an edit of the graph, no retraining).

Converters such as tf2onnx bake the export's batch of 1 into ``Reshape`` target shapes
(``[1, -1, 4]``), so the model rejects, or silently mixes, a batch of several images even when
its input says ``N``. :func:`make_batch_dynamic`:

1. sets dimension 0 of the image input and of every output to the symbolic ``batch``;
2. in every ``Reshape`` whose target shape is a constant (initializer or ``Constant`` node)
   starting with the static batch, replaces that first value by ``0`` ("copy dimension 0 of the
   data", ONNX semantics without ``allowzero``), so the batch flows through;
3. drops the intermediate shapes recorded in ``value_info`` (stale with a batch of 1) and checks
   the result with ``onnx.checker``.

It refuses (:class:`DynamicBatchError`) a model it cannot make correct this way: a ``Reshape``
whose constant target shape does not start with the batch (e.g. ``[-1, 4]``, which would fold
the batch into rows), a target shape computed at run time, ``allowzero=1``, or an input with a
dynamic dimension other than 0. :func:`check_batch_outputs` then runs the new model with ONNX
Runtime and compares each image of a batch with its batch-1 outputs.

Needs the ``onnx`` package (``pip install onnx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_bytes

BATCH_DIM = "batch"


class DynamicBatchError(ValueError):
    """A model whose batch cannot be made dynamic by this edit, with the reason."""


@dataclass(frozen=True)
class DynamicBatchReport:
    """What :func:`make_batch_dynamic` changed: the input's name and its former batch, the names of
    the ``Reshape`` nodes whose target shape now copies the batch, and the outputs made dynamic.
    """

    input_name: str
    static_batch: int
    reshapes: tuple[str, ...]
    outputs: tuple[str, ...]


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise DynamicBatchError("making a batch dynamic needs the 'onnx' package (pip install onnx)") from exc
    return onnx


def make_batch_dynamic(model: Any) -> DynamicBatchReport:
    """Edit ``model`` (an ``onnx.ModelProto``, in place) as the module docstring says."""
    onnx = _import_onnx()
    from onnx import numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise DynamicBatchError(f"the model has {len(inputs)} inputs {[i.name for i in inputs]}; "
                                "exactly one image input is supported")
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims:
        raise DynamicBatchError(f"input {inputs[0].name!r} has no shape")
    other_dynamic = [i for i, d in enumerate(dims) if i > 0 and not d.HasField("dim_value")]
    if other_dynamic:
        raise DynamicBatchError(f"input {inputs[0].name!r} has dynamic dimension(s) {other_dynamic}; "
                                "only a model with a fixed image size is supported")
    batch = dims[0].dim_value if dims[0].HasField("dim_value") else 0
    if batch < 1:
        raise DynamicBatchError(f"input {inputs[0].name!r} already has a dynamic batch ({dims[0].dim_param!r})")

    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    renamed: dict[str, str] = {}    # old target shape -> its copy starting with 0
    edited = []
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            raise DynamicBatchError(f"Reshape {node.name!r} has allowzero=1; its 0 cannot copy the batch")
        shape_name = node.input[1]
        if shape_name in initializers:
            shape = numpy_helper.to_array(initializers[shape_name])
        elif shape_name in constants:
            shape = numpy_helper.to_array(constants[shape_name].attribute[0].t)
        else:
            raise DynamicBatchError(f"Reshape {node.name!r} takes its target shape from {shape_name!r}, "
                                    "computed at run time; this edit handles constant shapes only")
        if shape.ndim != 1 or shape.size == 0 or int(shape[0]) != batch:
            raise DynamicBatchError(f"Reshape {node.name!r} has target shape {shape.tolist()}, which does not "
                                    f"start with the batch {batch}: the batch would be folded into another "
                                    "dimension")
        if shape_name not in renamed:   # a new tensor: other nodes may read the old one
            new_shape = shape.copy()
            new_shape[0] = 0
            renamed[shape_name] = f"{shape_name}__batch_dynamic"
            graph.initializer.append(numpy_helper.from_array(new_shape, renamed[shape_name]))
        node.input[1] = renamed[shape_name]
        edited.append(node.name)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name in renamed and t.name not in used]:
        graph.initializer.remove(tensor)
    for name in [name for name in renamed if name in constants and name not in used]:
        graph.node.remove(constants[name])

    for value in (inputs[0], *graph.output):
        out_dims = value.type.tensor_type.shape.dim
        if out_dims:
            out_dims[0].Clear()
            out_dims[0].dim_param = BATCH_DIM
    del graph.value_info[:]
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise DynamicBatchError(f"the edited model does not pass onnx.checker: {exc}") from exc
    return DynamicBatchReport(inputs[0].name, batch, tuple(edited), tuple(o.name for o in graph.output))


def convert_file(source: Path, output: Path) -> DynamicBatchReport:
    """Load ``source``, :func:`make_batch_dynamic`, write ``output`` atomically (never over ``source``)."""
    onnx = _import_onnx()
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve():
        raise DynamicBatchError(f"--output must differ from the input model {source}")
    try:
        model = onnx.load(str(source))
    except Exception as exc:   # onnx raises DecodeError / OSError variants
        raise DynamicBatchError(f"cannot load ONNX model {source}: {exc}") from exc
    report = make_batch_dynamic(model)
    atomic_write_bytes(output, model.SerializeToString())
    return report


def check_batch_outputs(model_path: Path, batch: int, seed: int = 0,
                        images: Optional[np.ndarray] = None) -> float:
    """Largest absolute difference between the outputs of a batch of ``batch`` images and each
    image's own batch-1 outputs, with ONNX Runtime on the CPU.

    images: float[batch, C, H, W] in the model's input layout (default: uniform noise in [-1, 1]
    from ``seed``).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:   # ORT raises its own exception types
        raise DynamicBatchError(f"ONNX Runtime cannot load {model_path}: {exc}") from exc
    spec = session.get_inputs()[0]
    if images is None:
        shape = [batch] + [int(d) for d in spec.shape[1:]]
        images = np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)
    together = session.run(None, {spec.name: images})
    worst = 0.0
    for i in range(images.shape[0]):
        alone = session.run(None, {spec.name: images[i:i + 1]})
        for batched, single in zip(together, alone):
            if batched.shape[1:] != single.shape[1:] or batched.shape[0] != images.shape[0]:
                raise DynamicBatchError(f"an output has shape {list(batched.shape)} for a batch of "
                                        f"{images.shape[0]} but {list(single.shape)} for one image")
            worst = max(worst, float(np.max(np.abs(batched[i:i + 1] - single))))
    return worst
