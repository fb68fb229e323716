"""decode_image / decode_compressed_image on arbitrary and deliberately broken buffers (hypothesis).

Whatever the fields say, the result is either pixels of the declared size and the right content,
or an ImageError with the reason: never another exception, never a crash, and never an
allocation sized by a header that the data does not back.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trt_perception.core.image import (
    ENCODINGS,
    MAX_COMPRESSED_PIXELS,
    ImageError,
    decode_compressed_image,
    decode_image,
)

BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "uyvy": 2,
                   "yuv422": 2, "yuyv": 2, "yuv422_yuy2": 2, "nv12": 1, "nv21": 1}
HUGE = [2**16, 2**20, 2**31 - 1, 2**31, 2**32 - 1]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rows_of(encoding: str, height: int) -> int:
    return height * 3 // 2 if encoding in ("nv12", "nv21") else height


def jpeg(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def png(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".png", pixels)[1].tobytes()


def sof_offset(data: bytes) -> int:
    """Offset of the SOF0 marker in a baseline JPEG from cv2.imencode."""
    offset = data.find(b"\xff\xc0")
    assert offset > 0
    return offset


def with_size(data: bytes, codec: str, width: int, height: int) -> bytes:
    """``data`` with the width/height fields of its header overwritten (no other change)."""
    out = bytearray(data)
    if codec == "jpeg":
        struct.pack_into(">HH", out, sof_offset(data) + 5, height, width)
    else:
        struct.pack_into(">II", out, 16, width, height)
    return bytes(out)


@st.composite
def raw_fields(draw):
    """Fields of a sensor_msgs/Image: mostly consistent, often subtly not, sometimes absurd."""
    encoding = draw(st.one_of(st.sampled_from(ENCODINGS), st.text(max_size=12)))
    width = draw(st.one_of(st.integers(0, 24), st.sampled_from(HUGE)))
    height = draw(st.one_of(st.integers(0, 24), st.sampled_from(HUGE)))
    bpp = BYTES_PER_PIXEL.get(encoding, 3)
    step = draw(st.one_of(st.just(width * bpp), st.integers(width * bpp, width * bpp + 9),
                          st.integers(0, 2**32 - 1)))
    needed = step * rows_of(encoding, height)
    size = draw(st.one_of(st.just(needed), st.integers(max(0, needed - 9), needed + 9), st.integers(0, 64)))
    assume(size <= 1 << 16)  # the data itself stays small; the header may claim anything
    data = draw(st.binary(min_size=size, max_size=size)) if size <= 64 else bytes(size)
    return data, encoding, width, height, step, draw(st.one_of(st.booleans(), st.integers(0, 255)))


@FUZZ
@given(raw_fields())
def test_raw_fields_give_the_declared_pixels_or_an_image_error(fields):
    data, encoding, width, height, step, bigendian = fields
    try:
        pixels, order = decode_image(data, encoding, width, height, step, bigendian)
    except ImageError as exc:
        assert str(exc)
        return
    # accepted: only a supported encoding whose buffer is exactly what the header says
    assert encoding in ENCODINGS and width > 0 and height > 0
    assert len(data) == step * rows_of(encoding, height) and step >= width * BYTES_PER_PIXEL[encoding]
    assert pixels.dtype == np.uint8 and pixels.shape[:2] == (height, width)
    assert pixels.ndim == (2 if order == "mono" else 3) and order in ("rgb", "bgr", "mono")
    rows = np.frombuffer(data, np.uint8).reshape(-1, step)
    if encoding in ("rgb8", "bgr8", "mono8"):
        expected = rows[:, :width * BYTES_PER_PIXEL[encoding]].reshape(pixels.shape)
        np.testing.assert_array_equal(pixels, expected)


def test_a_huge_header_with_ten_bytes_is_refused_without_allocating():
    """A child process whose address space allows only 256 MiB more than it holds after imports:
    an allocation sized by any of these headers would fail there with a non-ImageError."""
    script = textwrap.dedent("""
        import resource, struct, cv2, numpy as np
        from trt_perception.core.image import ImageError, decode_compressed_image, decode_image
        vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))
        raw = [(bytes(10), "rgb8", 2**31, 1, 3 * 2**31), (bytes(10), "mono16", 2**31 - 1, 2**31 - 1, 2**32 - 2),
               (bytes(10), "nv12", 2**16, 2**16, 2**16), (bytes(10), "rgba8", 1, 2**32 - 1, 4)]
        jpeg = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
        struct.pack_into(">HH", jpeg, jpeg.find(b"\\xff\\xc0") + 5, 30000, 30000)
        png = bytearray(cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
        struct.pack_into(">II", png, 16, 2**31 - 1, 2**31 - 1)
        refused = 0
        for args in raw:
            try:
                decode_image(*args)
            except ImageError:
                refused += 1
        for data, fmt in ((bytes(jpeg), "jpeg"), (bytes(png), "png")):
            try:
                decode_compressed_image(data, fmt)
            except ImageError:
                refused += 1
        print("refused", refused)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "6"]


@pytest.mark.parametrize("codec", ["jpeg", "png"])
@pytest.mark.parametrize("width, height", [(30000, 30000), (0, 16), (16, 0), (65535, 65535), (8193, 8192)])
def test_compressed_headers_beyond_the_pixel_limit_are_refused(codec, width, height):
    data = (jpeg if codec == "jpeg" else png)(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ImageError, match=f"{codec} header declares {width}x{height} pixels"):
        decode_compressed_image(with_size(data, codec, width, height), codec)
    assert width * height > MAX_COMPRESSED_PIXELS or 0 in (width, height)


images = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1))


def image_of(shape) -> np.ndarray:
    height, width, channels, seed = shape
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return pixels[:, :, 0] if channels == 1 else pixels


@FUZZ
@given(images, st.sampled_from(["jpeg", "png"]), st.data())
def test_truncated_compressed_images_are_refused(shape, codec, data):
    full = (jpeg if codec == "jpeg" else png)(image_of(shape))
    # a PNG cut inside its trailing IEND chunk (12 bytes) still has all pixels; cut before it
    cut = data.draw(st.integers(0, len(full) - (3 if codec == "jpeg" else 13)))
    truncated = full[:cut]
    assume(not truncated.endswith(b"\xff\xd9"))
    with pytest.raises(ImageError):
        decode_compressed_image(truncated, data.draw(st.sampled_from([codec, "", f"bgr8; {codec} compressed bgr8"])))


@FUZZ
@given(images, st.sampled_from(["jpeg", "png"]), st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)),
                                                           min_size=1, max_size=8))
def test_damaged_compressed_images_decode_to_their_size_or_are_refused(shape, codec, flips):
    pixels = image_of(shape)
    full = bytearray((jpeg if codec == "jpeg" else png)(pixels))
    for position, mask in flips:
        full[position % len(full)] ^= mask
    try:
        decoded, order = decode_compressed_image(bytes(full), codec)
    except ImageError as exc:
        assert str(exc)
        return
    assert decoded.dtype == np.uint8 and order in ("bgr", "mono")
    assert decoded.size <= 3 * MAX_COMPRESSED_PIXELS
    if codec == "png":  # chunk CRCs: a PNG that decodes despite the damage was damaged outside the pixels
        assert decoded.shape[:2] == pixels.shape[:2]


@FUZZ
@given(st.binary(max_size=2048), st.one_of(st.sampled_from(["jpeg", "png", "", "jpg", "tiff", "rgb8; jpeg compressed",
                                                            "16UC1; compressedDepth png"]), st.text(max_size=20)))
def test_arbitrary_bytes_and_formats_are_refused(data, fmt):
    with pytest.raises(ImageError):
        decode_compressed_image(data, fmt)


@pytest.mark.parametrize("codec, other", [("jpeg", "png"), ("png", "jpeg")])
def test_the_format_must_match_the_data(codec, other):
    data = (jpeg if codec == "jpeg" else png)(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match=f"not {other}"):
        decode_compressed_image(data, other)
    assert decode_compressed_image(data, codec)[0].shape == (8, 8, 3)


def test_jpeg_zero_padding_after_the_end_marker_is_accepted():
    pixels = np.full((16, 24, 3), 90, np.uint8)
    decoded, order = decode_compressed_image(jpeg(pixels) + bytes(100), "jpeg")
    assert order == "bgr" and decoded.shape == pixels.shape
    assert np.abs(decoded.astype(int) - 90).max() <= 2
