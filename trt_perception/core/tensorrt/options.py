"""Engine-build settings, validated without TensorRT.

Precisions (``precision``):

- ``fp32``: every layer in FP32 (TF32 allowed where the GPU has it);
- ``fp16``: layers may run in FP16 (``BuilderFlag.FP16``); required for DLA unless INT8;
- ``int8``: layers may run in INT8, and in FP16 where INT8 is not possible (``INT8`` + ``FP16``).
  An ONNX with QuantizeLinear/DequantizeLinear nodes is quantized *explicitly* (its scales are
  used, no calibration); any other ONNX needs *legacy calibration*: calibration frames and/or an
  existing calibration cache (see :mod:`.calibration`).

The batch range ``min_batch <= opt_batch <= max_batch`` becomes the optimization profile of a
model with a dynamic batch dimension; a model with a fixed batch needs all three equal to it.

``layer_precisions`` pins ONNX nodes' layers to FP32 or FP16 (precision constraints TensorRT
obeys; see :mod:`trt_perception.core.tensorrt.layer_precision`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from trt_perception.core.tensorrt.layer_precision import LAYER_PRECISIONS

PRECISIONS = ("fp32", "fp16", "int8")
#: builder optimization levels TensorRT accepts (8.6 and later); 3 is TensorRT's default
OPTIMIZATION_LEVELS = range(0, 6)


class BuildOptionsError(ValueError):
    """Engine-build settings that cannot work together, with the reason."""


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides what engine TensorRT builds (and therefore its cache key).

    ``workspace_mb``: limit of the builder's scratch memory pool in MiB (``None``: TensorRT's
    default, the whole device memory). ``dla_core``: DLA core to build for, ``-1`` for the GPU.
    ``gpu_fallback``: with a DLA core, run layers the DLA cannot run on the GPU (else the build
    fails on the first such layer). ``optimization_level``: builder optimization level 0..5
    (``None``: TensorRT's default). ``calibration_id``: a description of the calibration data of a
    legacy INT8 build (sources, frame count, cache digest), so different data gives another key.
    ``layer_precisions``: sorted ``(ONNX node, "fp32" | "fp16")`` pairs pinned in the build.
    """

    precision: str = "fp16"
    workspace_mb: Optional[int] = None
    dla_core: int = -1
    gpu_fallback: bool = True
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    optimization_level: Optional[int] = None
    calibration_id: str = ""
    layer_precisions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.workspace_mb is not None and not (_is_int(self.workspace_mb) and self.workspace_mb > 0):
            problems.append(f"workspace_mb must be a positive integer (MiB) or None, got {self.workspace_mb!r}")
        if not (_is_int(self.dla_core) and self.dla_core >= -1):
            problems.append(f"dla_core must be -1 (GPU) or a DLA core index >= 0, got {self.dla_core!r}")
        elif self.dla_core >= 0 and self.precision == "fp32":
            problems.append("DLA runs only FP16 or INT8 layers: use precision fp16 or int8 with dla_core "
                            f"{self.dla_core}, or dla_core -1 for the GPU")
        if not isinstance(self.gpu_fallback, bool):
            problems.append(f"gpu_fallback must be true or false, got {self.gpu_fallback!r}")
        batches = (self.min_batch, self.opt_batch, self.max_batch)
        if not all(_is_int(b) and b >= 1 for b in batches):
            problems.append(f"min/opt/max batch must be integers >= 1, got {batches}")
        elif not self.min_batch <= self.opt_batch <= self.max_batch:
            problems.append(f"batch range must satisfy min <= opt <= max, got {batches}")
        if self.optimization_level is not None and self.optimization_level not in OPTIMIZATION_LEVELS:
            problems.append(f"optimization_level must be 0..5 or None, got {self.optimization_level!r}")
        if not isinstance(self.calibration_id, str):
            problems.append(f"calibration_id must be a string, got {self.calibration_id!r}")
        problems += self._layer_precision_problems()
        if problems:
            raise BuildOptionsError("invalid TensorRT build options: " + "; ".join(problems))

    def _layer_precision_problems(self) -> list[str]:
        pairs = self.layer_precisions
        if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and p[0]
                   and p[1] in LAYER_PRECISIONS for p in pairs):
            return [f"layer_precisions must be (node name, one of {LAYER_PRECISIONS}) pairs, got {pairs!r}"]
        if list(pairs) != sorted(set(pairs)) or len({name for name, _ in pairs}) != len(pairs):
            return ["layer_precisions must be sorted, one entry per node (use precision.layer_precision.as_key)"]
        allowed = {"fp32": (), "fp16": ("fp32",), "int8": ("fp32", "fp16")}[self.precision] \
            if self.precision in PRECISIONS else LAYER_PRECISIONS
        wrong = sorted({p for _, p in pairs if p not in allowed})
        if wrong:
            return [f"a {self.precision} build can pin layers only to {list(allowed) or 'nothing'}, not {wrong}"]
        return []

    @property
    def uses_dla(self) -> bool:
        """True when a DLA core is selected (``dla_core >= 0``)."""
        return self.dla_core >= 0

    @property
    def workspace_bytes(self) -> Optional[int]:
        """The workspace limit in bytes, or None for TensorRT's default."""
        return None if self.workspace_mb is None else self.workspace_mb << 20

    def key_fields(self) -> dict[str, Any]:
        """The fields as plain JSON values, for the engine cache key (``layer_precisions`` only
        when set, so keys of builds without pinned layers are what they were before it existed).
        """
        fields = asdict(self)
        pinned = fields.pop("layer_precisions")
        if pinned:
            fields["layer_precisions"] = [list(pair) for pair in pinned]
        return fields

    def describe(self) -> str:
        """Short human-readable summary, e.g. ``fp16, DLA core 0 (GPU fallback), batch 1``."""
        parts = [self.precision]
        if self.uses_dla:
            parts.append(f"DLA core {self.dla_core}" + (" (GPU fallback)" if self.gpu_fallback else ""))
        if self.min_batch == self.max_batch:
            parts.append(f"batch {self.max_batch}")
        else:
            parts.append(f"batch {self.min_batch}..{self.max_batch} (opt {self.opt_batch})")
        if self.workspace_mb is not None:
            parts.append(f"workspace {self.workspace_mb} MiB")
        if self.optimization_level is not None:
            parts.append(f"optimization level {self.optimization_level}")
        if self.layer_precisions:
            parts.append(f"{len(self.layer_precisions)} layer(s) pinned")
        return ", ".join(parts)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
