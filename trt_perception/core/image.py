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
``is_bigendian`` only matters for mono16 (8-bit data has no byte order). ``data`` must hold exactly
``step * rows`` bytes, as ``sensor_msgs/Image`` defines it (more or fewer means the header does not
describe the buffer). A view shares memory with ``data`` and is read-only when ``data`` is
(``bytes``); copy it to keep it beyond the message.

Compressed images are checked before anything is decoded: the data must start with the header of
its format (JPEG SOI, PNG signature and IHDR), the size in that header must be at most
:data:`MAX_COMPRESSED_PIXELS` (a few hundred bytes can claim 30000x30000 pixels, whose decoding
would take gigabytes and seconds), and a JPEG must end with its end-of-image marker (trailing zero
padding allowed), since some OpenCV versions fill a truncated JPEG with grey and report success.
Damage inside the entropy-coded data of a complete JPEG cannot be detected (JPEG has no checksum)
and decodes to wrong pixels of the right size; PNG checks its chunks' CRCs, so damaged PNGs are
rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

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

#: largest width * height a compressed image may declare (8192 x 8192)
MAX_COMPRESSED_PIXELS = 1 << 26

_JPEG_SOI = b"\xff\xd8\xff"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG frame-header markers (SOF0..SOF15 but DHT C4, JPG C8, DAC CC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field (TEM, RST0..RST7)
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_JPEG_SOS = 0xDA


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


L = TypeVar("L", bound="ImageLayout")


@dataclass(frozen=True)
class ImageLayout:
    """A raw image's fields as ``sensor_msgs/Image`` gives them; :meth:`create` checks them."""

    encoding: str
    width: int
    height: int
    step: int
    is_bigendian: bool = False

    @classmethod
    def create(cls: type[L], encoding: str, width: int, height: int, step: int,
               is_bigendian: Union[bool, int] = False) -> L:
        """Raises :class:`ImageError` for an unsupported encoding, a zero size, odd sizes where chroma
        is subsampled, or a ``step`` shorter than a row.
        """
        if encoding not in ENCODINGS:
            raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
        if width <= 0 or height <= 0:
            raise ImageError(f"image has zero size ({width}x{height}, encoding {encoding})")
        if (encoding in _YUV422_CODES or encoding in _YUV420_CODES) and width % 2:
            raise ImageError(f"{encoding} image width must be even, got {width}")
        if encoding in _YUV420_CODES and height % 2:
            raise ImageError(f"{encoding} image height must be even, got {height}")
        row_bytes = width * _LAYOUTS[encoding][0]
        if step < row_bytes:
            raise ImageError(f"step {step} is shorter than one {encoding} row of {width} pixels "
                             f"({row_bytes} bytes)")
        return cls(encoding, int(width), int(height), int(step), bool(is_bigendian))

    @property
    def rows(self) -> int:
        """Rows of ``step`` bytes in the buffer (4:2:0 adds the chroma rows)."""
        return self.height * 3 // 2 if self.encoding in _YUV420_CODES else self.height

    @property
    def nbytes(self) -> int:
        """Bytes of the buffer: ``step * rows``."""
        return self.step * self.rows


@dataclass(frozen=True)
class RawImage(ImageLayout):
    """A raw image whose fields were checked against its buffer (:meth:`create_from`); decoding it
    (:meth:`decode`) cannot fail. ``data``: the message's bytes as a flat uint8 array of exactly
    ``step * rows`` bytes (a view, no copy).
    """

    data: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8), kw_only=True)

    @classmethod
    def create_from(cls, data: BytesLike, encoding: str, width: int, height: int, step: int,
                    is_bigendian: Union[bool, int] = False) -> "RawImage":
        """Check a raw image (``sensor_msgs/Image`` fields) without converting any pixel.

        Raises :class:`ImageError` as :meth:`ImageLayout.create` does, or when ``data`` is other than
        ``step * rows`` bytes.
        """
        layout = ImageLayout.create(encoding, width, height, step, is_bigendian)
        buffer = _byte_buffer(data)
        if buffer.size != layout.nbytes:
            problem = "truncated" if buffer.size < layout.nbytes else "longer than its header says"
            raise ImageError(f"image data is {problem}: {buffer.size} bytes, but a {width}x{height} "
                             f"{encoding} image with step {step} has {layout.nbytes}")
        return cls(layout.encoding, layout.width, layout.height, layout.step, layout.is_bigendian, data=buffer)

    def decode(self) -> Decoded:
        """``(pixels, order)`` as :func:`decode_image` returns them."""
        _, channels, order = _LAYOUTS[self.encoding]
        height, width, step = self.height, self.width, self.step
        if self.encoding == "mono16":
            dtype = np.dtype(">u2" if self.is_bigendian else "<u2")
            wide = np.ndarray((height, width), dtype=dtype, buffer=self.data, strides=(step, 2))
            return mono16_to_mono8(wide), order
        shape = (self.rows, width) if channels == 1 else (self.rows, width, channels)
        strides = (step, 1) if channels == 1 else (step, channels, 1)
        view = np.ndarray(shape, dtype=np.uint8, buffer=self.data, strides=strides)
        if self.encoding in _YUV420_CODES:
            return cv2.cvtColor(view, _YUV420_CODES[self.encoding]), order
        if self.encoding in _YUV422_CODES:
            return cv2.cvtColor(view, _YUV422_CODES[self.encoding]), order
        if channels == 4:
            return view[:, :, :3], order
        return view, order


def decode_image(data: BytesLike, encoding: str, width: int, height: int, step: int,
                 is_bigendian: Union[bool, int] = False) -> Decoded:
    """Pixels of a raw image (``sensor_msgs/Image`` fields); see the module docstring.

    Raises :class:`ImageError` as :meth:`RawImage.create_from` does.
    """
    return RawImage.create_from(data, encoding, width, height, step, is_bigendian).decode()


def _compressed_codec(fmt: str, buffer: np.ndarray) -> str:
    """``jpeg`` or ``png`` from a CompressedImage ``format`` (or from the magic bytes when empty)."""
    text = fmt.strip().lower()
    if "compresseddepth" in text:
        raise ImageError(f"format {fmt!r}: compressedDepth images (depth maps) are not supported")
    if not text:
        if buffer[:3].tobytes() == _JPEG_SOI:
            return "jpeg"
        if buffer[:8].tobytes() == _PNG_SIGNATURE:
            return "png"
        raise ImageError("compressed image has an empty format and is neither JPEG nor PNG data")
    # image_transport writes e.g. "bgr8; jpeg compressed bgr8"; plain "jpeg"/"png" is common too
    codec_part = text.split(";")[-1].split()
    codec = codec_part[0] if codec_part else ""
    codec = "jpeg" if codec == "jpg" else codec
    if codec not in COMPRESSED_FORMATS:
        raise ImageError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    return codec


def _jpeg_size(data: memoryview) -> tuple[int, int]:
    """(width, height) from the frame header (SOFn) of JPEG ``data`` that starts with SOI."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError(f"damaged JPEG header: no marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:                       # fill byte before a marker
            pos += 1
        elif marker in _JPEG_STANDALONE:
            pos += 2
        elif marker == _JPEG_SOS:
            break
        elif marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            return (data[pos + 7] << 8) | data[pos + 8], (data[pos + 5] << 8) | data[pos + 6]
        else:                                    # any other segment: skip its length
            pos += 2 + ((data[pos + 2] << 8) | data[pos + 3])
    raise ImageError("damaged or truncated JPEG header: no frame header (SOF) before the image data")


def _png_size(data: memoryview) -> tuple[int, int]:
    """(width, height) from the IHDR chunk of PNG ``data`` that starts with the PNG signature."""
    if len(data) < 24 or bytes(data[12:16]) != b"IHDR":
        raise ImageError("damaged or truncated PNG header: the IHDR chunk does not follow the signature")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _check_compressed(codec: str, buffer: np.ndarray) -> None:
    """Raise :class:`ImageError` unless ``buffer`` holds a complete ``codec`` image of sane size."""
    magic = _JPEG_SOI if codec == "jpeg" else _PNG_SIGNATURE
    if buffer[:len(magic)].tobytes() != magic:
        raise ImageError(f"the data is not {codec}: it does not start with the {codec} signature")
    data = buffer.data
    width, height = _jpeg_size(data) if codec == "jpeg" else _png_size(data)
    if width == 0 or height == 0 or width * height > MAX_COMPRESSED_PIXELS:
        raise ImageError(f"{codec} header declares {width}x{height} pixels; accepted are 1 to "
                         f"{MAX_COMPRESSED_PIXELS} pixels")
    if codec == "jpeg":
        end = buffer.size - int(np.argmax(buffer[::-1] != 0))   # drop trailing zero padding
        if end < 2 or buffer[end - 2] != 0xFF or buffer[end - 1] != 0xD9:
            raise ImageError(f"JPEG data is truncated: {buffer.size} bytes without the end-of-image "
                             "marker (FF D9)")


def decode_compressed_image(data: BytesLike, fmt: str = "") -> Decoded:
    """Pixels of a ``sensor_msgs/CompressedImage`` (JPEG or PNG); see the module docstring.

    Colour images come back as "bgr" (alpha dropped), grey ones as "mono"; 16-bit PNGs are scaled
    to 8 bits like mono16. Raises :class:`ImageError` for empty, truncated, oversized, undecodable
    or unsupported data; nothing is decoded before the header passed its checks.
    """
    buffer = _byte_buffer(data)
    if buffer.size == 0:
        raise ImageError("compressed image data is empty")
    codec = _compressed_codec(fmt, buffer)
    _check_compressed(codec, buffer)
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
