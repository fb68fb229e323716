"""Frames from a video file, an image folder or a single image, for offline tools.

Every source is an iterable of ``(frame_index, pixels)`` items: ``frame_index`` counts frames of
the whole source from 0 (for a folder: the position of the file in the sorted list of image
files), ``pixels`` is ``uint8[H, W, 3]`` in **BGR** order (as OpenCV decodes). With ``every=N``
only frames 0, N, 2N, ... are yielded (the others are skipped without being decoded where the
format allows). ``len(source)`` is the number of items the iteration yields (for a video it comes
from the container header, so it is an estimate for a damaged file), which is what a progress bar
needs. A source can be iterated more than once.

Unreadable inputs raise :class:`FrameSourceError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, Union

import cv2
import numpy as np

#: file name suffixes (lower case) treated as images; anything else is tried as a video
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")

Frame = tuple[int, np.ndarray]
PathLike = Union[str, Path]


class FrameSourceError(ValueError):
    """An input path that cannot be read as frames, with the reason."""


class FrameSource(Protocol):
    """Iterable of ``(frame_index, uint8[H, W, 3] BGR)`` with a known length (see module doc)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Frame]: ...


def _check_every(every: int) -> int:
    if not isinstance(every, int) or every < 1:
        raise FrameSourceError(f"every must be an integer >= 1, got {every!r}")
    return every


def _strided_count(total: int, every: int) -> int:
    return (total + every - 1) // every


def read_image(path: PathLike) -> np.ndarray:
    """Decode one image file to uint8[H, W, 3] BGR (grey and 16-bit files are converted)."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise FrameSourceError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FrameSourceError(f"cannot decode image {path}: not an image format OpenCV reads, "
                               "or the file is damaged")
    return image


class ImageFileFrames:
    """One image file as a source of one frame (index 0)."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FrameSourceError(f"image {self.path} does not exist")

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[Frame]:
        yield 0, read_image(self.path)


class ImageFolderFrames:
    """The image files of a folder (not recursive), sorted by file name."""

    def __init__(self, path: PathLike, every: int = 1) -> None:
        self.path = Path(path)
        self.every = _check_every(every)
        if not self.path.is_dir():
            raise FrameSourceError(f"image folder {self.path} does not exist")
        self.files = sorted(p for p in self.path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FrameSourceError(f"image folder {self.path} holds no image files "
                                   f"(looked for {', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return _strided_count(len(self.files), self.every)

    def __iter__(self) -> Iterator[Frame]:
        for index in range(0, len(self.files), self.every):
            yield index, read_image(self.files[index])


class VideoFrames:
    """The frames of a video file, decoded with OpenCV's VideoCapture."""

    def __init__(self, path: PathLike, every: int = 1) -> None:
        self.path = Path(path)
        self.every = _check_every(every)
        if not self.path.is_file():
            raise FrameSourceError(f"video {self.path} does not exist")
        capture = self._open()
        try:
            self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            #: frames per second from the container header (0.0 when it states none)
            self.fps = max(0.0, float(capture.get(cv2.CAP_PROP_FPS) or 0.0))
        finally:
            capture.release()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise FrameSourceError(f"cannot open video {self.path}: not a video format OpenCV "
                                   "reads, or the file is damaged")
        return capture

    def __len__(self) -> int:
        return _strided_count(self.frame_count, self.every)

    def __iter__(self) -> Iterator[Frame]:
        capture = self._open()
        try:
            index = 0
            while True:
                if index % self.every == 0:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    yield index, frame
                elif not capture.grab():
                    break
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise FrameSourceError(f"video {self.path} has no frame that can be decoded")


def open_frames(path: PathLike, every: int = 1) -> FrameSource:
    """The source for ``path``: a folder -> images in it, an image suffix -> that image, else a video."""
    path = Path(path).expanduser()
    _check_every(every)
    if path.is_dir():
        return ImageFolderFrames(path, every)
    if not path.exists():
        raise FrameSourceError(f"input {path} does not exist")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFileFrames(path)
    return VideoFrames(path, every)
