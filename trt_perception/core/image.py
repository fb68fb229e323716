"""Camera image buffers (the fields of ``sensor_msgs/Image`` and ``CompressedImage``) -> pixels.

No ROS types here: the functions take the message fields as plain values, so the ROS node calls
``decode_image(msg.data, msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian)`` and
feeds the result to :meth:`trt_perception.core.pipeline.Pipeline.run`.

Both functions return ``(pixels, order)`` where ``order`` is ``"rgb"``, ``"bgr"`` or ``"mono"``
(the ``source_order`` of :func:`~trt_perception.core.preprocess.preprocess`) and ``pixels`` is
``uint8[H, W, 3]`` (rgb/bgr) or ``uint8[H, W]`` (mono).

Supported ``Image`` encodings (names from ``sensor_msgs/image_encodings.hpp``):

========================= ================================ =====================================
encoding                  layout                           result
========================= ================================ =====================================
rgb8, bgr8                3 bytes per pixel                view of ``data`` (no copy)
rgba8, bgra8              4 bytes per pixel                view of ``data``, alpha dropped
mono8                     1 byte per pixel                 view of ``data``
mono16                    2 bytes per pixel, byte order    new array, ``round(v / 257)`` (maps
                          from ``is_bigendian``            0..65535 linearly onto 0..255)
uyvy, yuv422              packed 4:2:2, bytes U Y0 V Y1    new RGB array (BT.601, video range)
yuyv, yuv422_yuy2         packed 4:2:2, bytes Y0 U Y1 V    new RGB array (BT.601, video range)
nv12, nv21                Y plane, then interleaved UV     new RGB array (BT.601, video range)
                          (nv12) or VU (nv21) at half
                          resolution
========================= ================================ =====================================

Note: ``yuv422`` is the deprecated ROS name of **UYVY** (not YUYV), as in sensor_msgs and cv_bridge.
Rows may be padded (``step`` larger than the row size); for nv12/nv21 both planes use ``step``.
``is_bigendian`` only matters for mono16 (8-bit data has no byte order). A view shares memory with
``data`` and is read-only when ``data`` is (``bytes``); copy it to keep it beyond the message.
"""

from __future__ import annotations

from typing import Any, Union

import cv2
import numpy as np

BytesLike = Union[bytes, bytearray, memoryview, np.ndarray, Any]
Decoded = tuple[np.ndarray, str]

#: encoding -> (bytes per pixel in a row, channels of the view, source order of the result)
_LAYOUTS = {
    "rgb8": (3, 3, "rgb"),
    "bgr8": (3, 3, "bgr"),
    "rgba8": (4, 4, "rgb"),
    "bgra8": (4, 4, "bgr"),
    "mono8": (1, 1, "mono"),
    "mono16": (2, 1, "mono"),
    "uyvy": (2, 2, "rgb"),
    "yuv422": (2, 2, "rgb"),
    "yuyv": (2, 2, "rgb"),
    "yuv422_yuy2": (2, 2, "rgb"),
    "nv12": (1, 1, "rgb"),
    "nv21": (1, 1, "rgb"),
}
_YUV422_CODES = {
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
}
_YUV420_CODES = {"nv12": cv2.COLOR_YUV2RGB_NV12, "nv21": cv2.COLOR_YUV2RGB_NV21}

ENCODINGS = tuple(_LAYOUTS)
COMPRESSED_FORMATS = ("jpeg", "png")


class ImageError(ValueError):
    """Image data that cannot be decoded, with the reason."""


def _byte_buffer(data: BytesLike) -> np.ndarray:
    """``data`` as a flat uint8 array without copying (bytes, bytearray, array.array, ndarray)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageError(f"image data must be uint8 bytes, got an array of {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"image data must be a bytes-like buffer, got {type(data).__name__}") from exc


def mono16_to_mono8(image: np.ndarray) -> np.ndarray:
    """uint16[...] (any byte order) -> uint8[...] by ``round(v / 257)``: 0 -> 0, 65535 -> 255."""
    wide = image.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def decode_image(data: BytesLike, encoding: str, width: int, height: int, step: int,
                 is_bigendian: Union[bool, int] = False) -> Decoded:
    """Pixels of a raw image (``sensor_msgs/Image`` fields); see the module docstring.

    Raises :class:`ImageError` for an unsupported encoding, a zero size, a ``step`` shorter than
    a row, odd sizes where chroma is subsampled, or ``data`` shorter than ``step * rows``.
    """
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size ({width}x{height}, encoding {encoding})")
    if (encoding in _YUV422_CODES or encoding in _YUV420_CODES) and width % 2:
        raise ImageError(f"{encoding} image width must be even, got {width}")
    if encoding in _YUV420_CODES and height % 2:
        raise ImageError(f"{encoding} image height must be even, got {height}")

    bytes_per_pixel, channels, order = _LAYOUTS[encoding]
    row_bytes = width * bytes_per_pixel
    rows = height * 3 // 2 if encoding in _YUV420_CODES else height
    if step < row_bytes:
        raise ImageError(f"step {step} is shorter than one {encoding} row of {width} pixels "
                         f"({row_bytes} bytes)")
    buffer = _byte_buffer(data)
    if buffer.size < step * rows:
        raise ImageError(f"image data is truncated: {buffer.size} bytes, but a {width}x{height} "
                         f"{encoding} image with step {step} needs {step * rows}")

    if encoding == "mono16":
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        wide = np.ndarray((height, width), dtype=dtype, buffer=buffer, strides=(step, 2))
        return mono16_to_mono8(wide), order
    shape = (rows, width) if channels == 1 else (rows, width, channels)
    strides = (step, 1) if channels == 1 else (step, channels, 1)
    view = np.ndarray(shape, dtype=np.uint8, buffer=buffer, strides=strides)
    if encoding in _YUV420_CODES:
        return cv2.cvtColor(view, _YUV420_CODES[encoding]), order
    if encoding in _YUV422_CODES:
        return cv2.cvtColor(view, _YUV422_CODES[encoding]), order
    if channels == 4:
        return view[:, :, :3], order
    return view, order


def _compressed_codec(fmt: str, buffer: np.ndarray) -> str:
    """``jpeg`` or ``png`` from a CompressedImage ``format`` (or from the magic bytes when empty)."""
    text = fmt.strip().lower()
    if "compresseddepth" in text:
        raise ImageError(f"format {fmt!r}: compressedDepth images (depth maps) are not supported")
    if not text:
        if buffer[:3].tobytes() == b"\xff\xd8\xff":
            return "jpeg"
        if buffer[:8].tobytes() == b"\x89PNG\r\n\x1a\n":
            return "png"
        raise ImageError("compressed image has an empty format and is neither JPEG nor PNG data")
    # image_transport writes e.g. "bgr8; jpeg compressed bgr8"; plain "jpeg"/"png" is common too
    codec_part = text.split(";")[-1].split()
    codec = codec_part[0] if codec_part else ""
    codec = "jpeg" if codec == "jpg" else codec
    if codec not in COMPRESSED_FORMATS:
        raise ImageError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    return codec


def decode_compressed_image(data: BytesLike, fmt: str = "") -> Decoded:
    """Pixels of a ``sensor_msgs/CompressedImage`` (JPEG or PNG); see the module docstring.

    Colour images come back as "bgr" (alpha dropped), grey ones as "mono"; 16-bit PNGs are scaled
    to 8 bits like mono16. Raises :class:`ImageError` for empty, undecodable or unsupported data.
    """
    buffer = _byte_buffer(data)
    if buffer.size == 0:
        raise ImageError("compressed image data is empty")
    codec = _compressed_codec(fmt, buffer)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"cannot decode the compressed image as {codec} ({buffer.size} bytes, "
                         f"format {fmt!r}): the data is damaged or not {codec}")
    if image.dtype == np.uint16:
        image = mono16_to_mono8(image)
    elif image.dtype != np.uint8:
        raise ImageError(f"compressed image decodes to {image.dtype} pixels; only 8- and 16-bit "
                         "images are supported")
    if image.ndim == 2:
        return image, "mono"
    if image.shape[2] == 1:
        return image[:, :, 0], "mono"
    return image[:, :, :3], "bgr"
