"""Frame sources: indices, stride, lengths, BGR pixels and errors for unreadable inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.core.io.frame_sources import (
    FrameSourceError,
    ImageFileFrames,
    ImageFolderFrames,
    VideoFrames,
    open_frames,
)


def _coded_frame(value: int) -> np.ndarray:
    """A 64x48 BGR frame whose mean brightness encodes ``value`` (robust to lossy video codecs)."""
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[:, :, 0] = value      # blue channel carries the value, red stays 0: checks BGR order
    frame[:, :, 1] = 128
    return frame


def _write_video(path: Path, count: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(count):
        writer.write(_coded_frame(10 * i))
    writer.release()


@pytest.mark.parametrize("every, expected", [(1, list(range(7))), (3, [0, 3, 6]), (10, [0])])
def test_video_indices_and_stride(tmp_path: Path, every: int, expected: list[int]) -> None:
    path = tmp_path / "clip.avi"
    _write_video(path, 7)
    source = open_frames(path, every=every)
    assert isinstance(source, VideoFrames)
    items = list(source)
    assert [i for i, _ in items] == expected
    assert len(source) == len(expected)
    for index, frame in items:
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert abs(float(frame[:, :, 0].mean()) - 10 * index) < 4     # the right frame ...
        assert float(frame[:, :, 2].mean()) < 4                        # ... in BGR order
    assert [i for i, _ in source] == expected                          # iterable twice


def test_folder_sorted_positions_and_stride(tmp_path: Path) -> None:
    names = ["b.png", "a.png", "c.jpg", "d.PNG"]          # sorted: a, b, c, d
    for value, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), _coded_frame(50 * value))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_frames(tmp_path, every=2)
    assert isinstance(source, ImageFolderFrames)
    assert len(source) == 2
    items = list(source)
    assert [i for i, _ in items] == [0, 2]
    # a.png was written with value 50 (position 1 in names), c.jpg with 100
    assert abs(float(items[0][1][:, :, 0].mean()) - 50) < 2
    assert abs(float(items[1][1][:, :, 0].mean()) - 100) < 3


def test_single_image_grey_becomes_bgr(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), np.full((5, 7), 77, dtype=np.uint8))
    source = open_frames(path)
    assert isinstance(source, ImageFileFrames) and len(source) == 1
    ((index, frame),) = list(source)
    assert index == 0 and frame.shape == (5, 7, 3) and np.all(frame == 77)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FrameSourceError, match="does not exist"):
        open_frames(tmp_path / "missing.avi")
    with pytest.raises(FrameSourceError, match="no image files"):
        open_frames(tmp_path)
    broken_image = tmp_path / "broken.jpg"
    broken_image.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(FrameSourceError, match="cannot decode image"):
        list(open_frames(broken_image))
    broken_video = tmp_path / "broken.avi"
    broken_video.write_bytes(b"RIFF garbage" * 10)
    with pytest.raises(FrameSourceError, match="cannot open video"):
        open_frames(broken_video)
    with pytest.raises(FrameSourceError, match="every"):
        open_frames(broken_image, every=0)
