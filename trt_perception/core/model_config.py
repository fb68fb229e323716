"""Model configuration files (YAML): which model, how to feed it, how to read its outputs.

Layout (paths are relative to the YAML file)::

    task: ssd                      # ssd | pose: which decoder reads the outputs
    model: ssdlite_pedestrian_raw_nchw.onnx
    input: normalized_input_image_tensor
    outputs:                       # decoder role -> model output tensor name
      box_encodings: box_encodings
      class_predictions: class_predictions
    labels: ssdlite_pedestrian.labels   # optional, one class name per line
    preprocess: {width: 300, height: 300, ...}   # PreprocessConfig fields
    decoder: {...}                 # options of the task's decoder, read by the decoder itself
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from trt_perception.core.config_files import read_mapping
from trt_perception.core.preprocess import PreprocessConfig
from trt_perception.core.tensor_spec import TensorSpec, format_shape

TASKS = ("ssd", "pose")
_KEYS = {"task", "model", "input", "outputs", "labels", "preprocess", "decoder"}


class ModelConfigError(ValueError):
    """A model configuration that cannot be used, with the reason."""


@dataclass(frozen=True)
class ModelConfig:
    """A parsed model configuration; paths are absolute."""

    task: str
    model_path: Path
    input_name: str
    outputs: dict[str, str]
    preprocess: PreprocessConfig
    labels: list[str] = field(default_factory=list)
    decoder: dict[str, Any] = field(default_factory=dict)
    source: Optional[Path] = None

    def check_io(self, inputs: Mapping[str, TensorSpec], outputs: Mapping[str, TensorSpec]) -> None:
        """Raise :class:`ModelConfigError` unless the model's tensors match this configuration."""
        problems = []
        spec = inputs.get(self.input_name)
        if spec is None:
            problems.append(f"model has no input {self.input_name!r} (inputs: {sorted(inputs)})")
        else:
            want = self.preprocess.input_shape
            if len(spec.shape) != 4 or any(d is not None and d != w for d, w in zip(spec.shape, want)):
                problems.append(f"input {self.input_name!r} has shape {format_shape(spec.shape)} but "
                                f"the preprocess section makes {list(want)} "
                                f"({self.preprocess.layout}, {self.preprocess.width}x{self.preprocess.height})")
            if spec.dtype != self.preprocess.np_dtype:
                problems.append(f"input {self.input_name!r} is {spec.dtype} but preprocess.dtype is "
                                f"{self.preprocess.dtype}")
        if len(inputs) > 1:
            problems.append(f"model has {len(inputs)} inputs {sorted(inputs)}; exactly one image input is supported")
        for role, name in self.outputs.items():
            if name not in outputs:
                problems.append(f"output {name!r} (role {role!r}) is not a model output (outputs: {sorted(outputs)})")
        if problems:
            where = f" ({self.source})" if self.source else ""
            raise ModelConfigError(f"model {self.model_path.name} does not match its configuration{where}: "
                                   + "; ".join(problems))


def load_model_config(path: str | Path) -> ModelConfig:
    """Read and validate a model configuration YAML; errors name the file and the problem."""
    path = Path(path).expanduser().resolve()
    raw = read_mapping(path, "model config", yaml.safe_load, "YAML", (yaml.YAMLError,), ModelConfigError)
    return model_config_from_dict(raw, path.parent, source=path)


def model_config_from_dict(raw: Mapping[str, Any], base_dir: Path,
                           source: Optional[Path] = None) -> ModelConfig:
    """Validate a configuration mapping; relative paths are taken from ``base_dir``."""
    where = str(source) if source else "model config"
    unknown = set(raw) - _KEYS
    if unknown:
        raise ModelConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    missing = [k for k in ("task", "model", "input", "outputs", "preprocess") if k not in raw]
    if missing:
        raise ModelConfigError(f"{where}: missing keys {missing}")
    if raw["task"] not in TASKS:
        raise ModelConfigError(f"{where}: task must be one of {TASKS}, got {raw['task']!r}")
    outputs = raw["outputs"]
    if not isinstance(outputs, dict) or not outputs or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()):
        raise ModelConfigError(f"{where}: outputs must map decoder roles to output names, got {outputs!r}")
    model_path = (base_dir / str(raw["model"])).resolve()
    if not model_path.is_file():
        problem = "is a directory, not a model file" if model_path.is_dir() else "does not exist"
        raise ModelConfigError(f"{where}: model file {model_path} {problem}")
    try:
        preprocess = PreprocessConfig.from_dict(raw["preprocess"] or {})
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"{where}: preprocess: {exc}") from exc
    labels: list[str] = []
    if raw.get("labels"):
        labels_path = (base_dir / str(raw["labels"])).resolve()
        try:
            labels = [line.strip() for line in labels_path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise ModelConfigError(f"{where}: cannot read labels file {labels_path}: {exc.strerror or exc}") from exc
    decoder = raw.get("decoder") or {}
    if not isinstance(decoder, dict):
        raise ModelConfigError(f"{where}: decoder must be a mapping, got {type(decoder).__name__}")
    return ModelConfig(task=raw["task"], model_path=model_path, input_name=str(raw["input"]),
                       outputs=dict(outputs), preprocess=preprocess, labels=labels,
                       decoder=dict(decoder), source=source)
