"""decode_image / decode_compressed_image on images of known content, built independently."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from trt_perception.core.image import ENCODINGS, ImageError, decode_compressed_image, decode_image

H, W = 6, 8


def _block_rgb(seed: int = 0) -> np.ndarray:
    """uint8[H, W, 3] RGB, constant over 2x2 blocks (so 4:2:2 / 4:2:0 chroma loses nothing)."""
    blocks = np.random.default_rng(seed).integers(0, 256, size=(H // 2, W // 2, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)


def _padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Row bytes of a uint8[rows, row_bytes] array with ``pad`` junk bytes after each row."""
    junk = np.full((rows.shape[0], pad), 0xAB, dtype=np.uint8)
    padded = np.concatenate([rows.reshape(rows.shape[0], -1), junk], axis=1)
    return padded.tobytes(), padded.shape[1]


def _ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 video-range Y, Cb, Cr (uint8) written out from the standard's formula."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return tuple(np.clip(np.round(c), 0, 255).astype(np.uint8) for c in (y, cb, cr))


def _pack_yuv(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """uint8[rows, row_bytes] of ``rgb`` in a YUV ``encoding`` (chroma taken from even pixels)."""
    y, cb, cr = _ycbcr(rgb)
    if encoding in ("yuyv", "yuv422_yuy2", "uyvy", "yuv422"):
        out = np.empty((H, W // 2, 4), dtype=np.uint8)
        y0, y1, u, v = y[:, 0::2], y[:, 1::2], cb[:, 0::2], cr[:, 0::2]
        order = (y0, u, y1, v) if encoding in ("yuyv", "yuv422_yuy2") else (u, y0, v, y1)
        for i, plane in enumerate(order):
            out[:, :, i] = plane
        return out.reshape(H, W * 2)
    u, v = cb[0::2, 0::2], cr[0::2, 0::2]
    uv = np.stack([u, v] if encoding == "nv12" else [v, u], axis=-1).reshape(H // 2, W)
    return np.concatenate([y, uv], axis=0)


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding, channels, order", [
    ("rgb8", [0, 1, 2], "rgb"), ("bgr8", [2, 1, 0], "bgr"),
    ("rgba8", [0, 1, 2, None], "rgb"), ("bgra8", [2, 1, 0, None], "bgr")])
def test_packed_colour_is_a_view(encoding: str, channels: list, order: str, pad: int) -> None:
    rgb = _block_rgb()
    planes = [rgb[:, :, c] if c is not None else np.full((H, W), 200, np.uint8) for c in channels]
    data, step = _padded(np.stack(planes, axis=-1), pad)
    buffer = bytearray(data)
    pixels, got_order = decode_image(buffer, encoding, W, H, step, False)
    assert got_order == order and pixels.shape == (H, W, 3)
    expected = rgb if order == "rgb" else rgb[:, :, ::-1]
    np.testing.assert_array_equal(pixels, expected)
    assert np.shares_memory(pixels, np.frombuffer(buffer, dtype=np.uint8))


def test_mono8_with_padding_and_array_array_data() -> None:
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    data, step = _padded(grey, 3)
    pixels, order = decode_image(array.array("B", data), "mono8", W, H, step, True)
    assert order == "mono"
    np.testing.assert_array_equal(pixels, grey)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 3])          # odd padding: unaligned 16-bit rows
def test_mono16_byte_order_and_scaling(bigendian: bool, pad: int) -> None:
    values = np.random.default_rng(1).integers(0, 65536, size=(H, W)).astype(np.uint16)
    values[0, :4] = [0, 65535, 257 * 100, 128]
    raw = values.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(H, W * 2)
    data, step = _padded(raw, pad)
    pixels, order = decode_image(data, "mono16", W, H, step, bigendian)
    expected = np.array([[int(v / 257 + 0.5) for v in row] for row in values.tolist()], np.uint8)
    assert order == "mono"
    np.testing.assert_array_equal(pixels, expected)
    assert pixels[0, :4].tolist() == [0, 255, 100, 0]


@pytest.mark.parametrize("pad", [0, 6])
@pytest.mark.parametrize("encoding", ["yuyv", "yuv422_yuy2", "uyvy", "yuv422", "nv12", "nv21"])
def test_yuv_decodes_to_rgb(encoding: str, pad: int) -> None:
    rgb = _block_rgb(2)
    data, step = _padded(_pack_yuv(rgb, encoding), pad)
    pixels, order = decode_image(data, encoding, W, H, step, False)
    assert order == "rgb" and pixels.shape == (H, W, 3)
    assert np.abs(pixels.astype(int) - rgb.astype(int)).max() <= 3


def test_yuv422_is_uyvy_not_yuyv() -> None:
    rgb = _block_rgb(3)
    yuyv_bytes = _pack_yuv(rgb, "yuyv").tobytes()
    as_uyvy, _ = decode_image(yuyv_bytes, "yuv422", W, H, W * 2)
    assert np.abs(as_uyvy.astype(int) - rgb.astype(int)).max() > 20


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoding="rgb16"), "unsupported image encoding 'rgb16'"),
    (dict(encoding="bayer_rggb8"), "supported: rgb8"),
    (dict(width=0), "zero size"),
    (dict(height=0), "zero size"),
    (dict(step=W * 3 - 1), "shorter than one rgb8 row"),
    (dict(data=bytes(H * W * 3 - 1)), "truncated: 143 bytes"),
    (dict(data=bytes(H * W * 3 + 1)), "longer than its header says: 145 bytes"),
    (dict(encoding="yuyv", width=7, step=14), "width must be even"),
    (dict(encoding="nv12", height=5, step=W), "height must be even"),
    (dict(data=np.zeros(H * W * 3, np.float32)), "must be uint8"),
    (dict(data=12345), "bytes-like"),
])
def test_bad_raw_images_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = dict(data=bytes(H * W * 3), encoding="rgb8", width=W, height=H, step=W * 3, is_bigendian=False)
    args.update(kwargs)
    with pytest.raises(ImageError, match=message):
        decode_image(**args)
    assert issubclass(ImageError, ValueError)


def test_every_listed_encoding_decodes() -> None:
    for encoding in ENCODINGS:
        rows = H * 3 // 2 if encoding in ("nv12", "nv21") else H
        pixels, order = decode_image(bytes(rows * 4 * W), encoding, W, H, 4 * W)  # step 4 W fits all
        assert pixels.dtype == np.uint8 and pixels.shape[:2] == (H, W)
        assert pixels.ndim == (2 if order == "mono" else 3)


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "", "PNG"])
def test_compressed_png_exact_bgr(fmt: str) -> None:
    bgr = _block_rgb(4)[:, :, ::-1]
    ok, encoded = cv2.imencode(".png", bgr)
    assert ok
    pixels, order = decode_compressed_image(encoded.tobytes(), fmt)
    assert order == "bgr"
    np.testing.assert_array_equal(pixels, bgr)


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "rgb8; jpeg compressed bgr8", ""])
def test_compressed_jpeg(fmt: str) -> None:
    bgr = np.zeros((32, 48, 3), np.uint8)
    bgr[:, :24] = (255, 0, 0)            # left half blue, right half red (BGR)
    bgr[:, 24:] = (0, 0, 255)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    pixels, order = decode_compressed_image(array.array("B", encoded.tobytes()), fmt)
    assert order == "bgr" and pixels.shape == (32, 48, 3)
    assert pixels[16, 4, 0] > 200 and pixels[16, 4, 2] < 50
    assert pixels[16, 44, 2] > 200 and pixels[16, 44, 0] < 50


def test_compressed_grey_alpha_and_16bit() -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    pixels, order = decode_compressed_image(cv2.imencode(".png", grey)[1].tobytes(), "png")
    assert order == "mono"
    np.testing.assert_array_equal(pixels, grey)

    bgra = np.dstack([_block_rgb(5), np.full((H, W), 9, np.uint8)])
    pixels, order = decode_compressed_image(cv2.imencode(".png", bgra)[1].tobytes(), "png")
    assert order == "bgr"
    np.testing.assert_array_equal(pixels, bgra[:, :, :3])

    wide = np.array([[0, 65535, 257 * 7, 257 * 200]], dtype=np.uint16)
    pixels, order = decode_compressed_image(cv2.imencode(".png", wide)[1].tobytes(), "png")
    assert order == "mono" and pixels.tolist() == [[0, 255, 7, 200]]


@pytest.mark.parametrize("data, fmt, message", [
    (b"", "jpeg", "empty"),
    (b"\xff\xd8\xff\xe0 broken", "jpeg", "no frame header"),
    (b"hello", "", "neither JPEG nor PNG"),
    (b"\x89PNG\r\n\x1a\n", "16UC1; compressedDepth png", "compressedDepth"),
    (b"II*\x00", "tiff", "unsupported compressed format 'tiff'"),
])
def test_bad_compressed_images_raise_clear_errors(data: bytes, fmt: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_compressed_image(data, fmt)
