"""Calibration data: frame sources -> preprocessed tensors -> fixed-size batches.

Used by both INT8 paths: TensorRT's legacy entropy calibrator (:mod:`.builder`) and ONNX
Runtime's static quantization (:mod:`trt_perception.core.quantize`). Frames are preprocessed
exactly as at inference (:func:`~trt_perception.core.preprocess.preprocess` with the model
config's settings), so the measured activation ranges are the real ones.

A calibration *source spec* is a string: a video file, an image folder or an image file (see
:func:`~trt_perception.core.io.frame_sources.open_frames`), or ``BAG#TOPIC`` for the images of one
topic of a rosbag2 recording (sqlite3 or mcap; ``sensor_msgs/Image`` or ``CompressedImage``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_bytes
from trt_perception.core.io.frame_sources import FrameSource, open_frames
from trt_perception.core.preprocess import PreprocessConfig, preprocess
from trt_perception.core.tensorrt.options import BuildOptions

#: ONNX operators that make a model explicitly quantized
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


class CalibrationError(ValueError):
    """Calibration data that cannot be used, with the reason."""


def open_source(spec: str, every: int = 1) -> FrameSource:
    """The frame source a spec names (``BAG#TOPIC`` for a rosbag topic, else a path)."""
    if "#" in spec:
        bag, topic = spec.rsplit("#", 1)
        from trt_perception.core.io.bag_frame_reader import RosbagFrames
        source: FrameSource = RosbagFrames(bag, topic, every=every)
        return source
    return open_frames(spec, every=every)


def preprocessed_frames(sources: Iterable[FrameSource], cfg: PreprocessConfig,
                        max_frames: Optional[int] = None) -> Iterator[np.ndarray]:
    """Each frame of ``sources`` in turn (BGR pixels) as a ``cfg.input_shape`` tensor of
    ``cfg.dtype``, at most ``max_frames`` of them.
    """
    if max_frames is not None and max_frames < 1:
        raise CalibrationError(f"max_frames must be >= 1 or None, got {max_frames}")
    frames = (pixels for source in sources for _, pixels in source)
    for pixels in islice(frames, max_frames):
        tensor, _ = preprocess(pixels, "bgr", cfg)
        yield tensor


class CalibrationBatches:
    """Per-frame tensors ``[1, ...]`` stacked into contiguous batches ``[batch_size, ...]``.

    Iterating yields full batches only (a trailing partial batch is dropped: calibrators need
    the profile's exact shape); every tensor must have the same shape and dtype. Iterable once
    per pass over ``tensors`` (pass a re-iterable to iterate again).
    """

    def __init__(self, tensors: Iterable[np.ndarray], batch_size: int, frames: Optional[int] = None) -> None:
        """``frames``: how many tensors ``tensors`` will yield, if known (for progress bars)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CalibrationError(f"calibration batch size must be an integer >= 1, got {batch_size!r}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.expected_batches = None if frames is None else frames // batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        first: Optional[np.ndarray] = None
        for tensor in self.tensors:
            if first is None:
                if tensor.ndim < 1 or tensor.shape[0] != 1:
                    raise CalibrationError(f"calibration tensors must have a batch dimension of 1, "
                                           f"got shape {list(tensor.shape)}")
                first = tensor
            elif tensor.shape != first.shape or tensor.dtype != first.dtype:
                raise CalibrationError(f"calibration tensors differ: {first.dtype}{list(first.shape)} "
                                       f"then {tensor.dtype}{list(tensor.shape)}")
            pending.append(tensor)
            if len(pending) == self.batch_size:
                yield np.ascontiguousarray(np.concatenate(pending, axis=0))
                pending = []
        if first is None:
            raise CalibrationError("no calibration frames: the sources yielded nothing")


def read_calibration_cache(path: Optional[Path]) -> Optional[bytes]:
    """Content of a calibration cache file, or None when there is none (missing or empty)."""
    if path is None or not path.is_file():
        return None
    data = path.read_bytes()
    return data or None


def write_calibration_cache(path: Path, data: bytes) -> None:
    """Write a calibration cache atomically."""
    atomic_write_bytes(path, data)


def has_qdq_nodes(model_path: Union[str, Path]) -> bool:
    """True when the ONNX graph holds QuantizeLinear/DequantizeLinear nodes (explicit INT8)."""
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


@dataclass(frozen=True)
class CalibrationSettings:
    """Where legacy INT8 calibration gets its data.

    ``sources``: source specs (see the module docstring); every ``every``-th frame is used, at
    most ``max_frames`` in all. ``cache``: TensorRT calibration cache file, read when it exists
    (then no frame is needed) and written after a calibration.
    """

    sources: tuple[str, ...] = ()
    every: int = 1
    max_frames: Optional[int] = 500
    cache: Optional[Path] = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str) or not all(isinstance(s, str) and s for s in self.sources):
            raise CalibrationError(f"calibration sources must be a list of paths, got {self.sources!r}")
        if not isinstance(self.every, int) or self.every < 1:
            raise CalibrationError(f"calibration every must be an integer >= 1, got {self.every!r}")
        if self.max_frames is not None and (not isinstance(self.max_frames, int) or self.max_frames < 1):
            raise CalibrationError(f"calibration max_frames must be an integer >= 1 or None, got {self.max_frames!r}")
        object.__setattr__(self, "sources", tuple(self.sources))
        if self.cache is not None:
            object.__setattr__(self, "cache", Path(self.cache).expanduser())

    def identity(self) -> str:
        """Identity of the calibration input for the engine key: the content of the calibration
        cache when it exists (TensorRT then calibrates from it alone), else the source specs and
        sampling. Different data -> a different engine entry.
        """
        data = read_calibration_cache(self.cache)
        if data is not None:
            return f"cache:{hashlib.sha256(data).hexdigest()[:16]}"
        if self.sources:
            return f"frames:{'|'.join(self.sources)};every={self.every};max={self.max_frames}"
        raise CalibrationError("legacy INT8 calibration needs calibration frames (image folders, videos, "
                               f"BAG#TOPIC) or an existing calibration cache (none at {self.cache})")

    def open_sources(self) -> list[FrameSource]:
        """Every source, opened (so a bad path fails now), sampled every ``every`` frames."""
        return [open_source(spec, self.every) for spec in self.sources]

    def batches(self, cfg: PreprocessConfig, batch_size: int) -> CalibrationBatches:
        """The preprocessed calibration batches (sources are opened now, read when iterated)."""
        sources = self.open_sources()
        frames = sum(len(source) for source in sources)
        if self.max_frames is not None:
            frames = min(frames, self.max_frames)
        return CalibrationBatches(preprocessed_frames(sources, cfg, self.max_frames), batch_size, frames)


def needs_calibration(model_path: Union[str, Path], options: BuildOptions) -> bool:
    """True for an INT8 build of a model without Q/DQ nodes (legacy calibration)."""
    return options.precision == "int8" and not has_qdq_nodes(model_path)


def with_calibration_id(model_path: Union[str, Path], options: BuildOptions,
                        settings: Optional[CalibrationSettings]) -> BuildOptions:
    """``options`` with ``calibration_id`` set when the build calibrates (else cleared)."""
    if not needs_calibration(model_path, options):
        return dataclasses.replace(options, calibration_id="")
    return dataclasses.replace(options, calibration_id=(settings or CalibrationSettings()).identity())
