"""``trt-perception make-bag``: a video file, an image folder or an image -> a rosbag2 bag of one
image topic (``sensor_msgs/Image`` or, with ``--compressed``, ``sensor_msgs/CompressedImage``), or
with ``--cameras`` of one image topic per camera namespace (``<camera>/<--image-topic>``): one
``--input`` per camera, or one input that every camera reads from its own ``--offsets`` frame.

Header stamps advance by ``1 / --rate`` seconds from ``--start`` (default: now), the same for every
camera; the bag is written atomically (an interrupted run leaves nothing at ``--output``), never
over an existing one.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from typing import Any, Iterable, Iterator, Optional

from tqdm import tqdm

from trt_perception.core.io.bag_writer import STORAGES
from trt_perception.core.io.frame_sources import Frame, FrameSourceError, open_frames
from trt_perception.core.io.frames_to_bag import COMPRESSIONS, ENCODINGS, ImageBagOptions, write_image_topics


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``make-bag`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "make-bag", help="write a video, image folder or image into a rosbag2 image bag",
        description="Write the frames of a video file, an image folder or an image into a new "
                    "rosbag2 bag (sqlite3 or mcap) as sensor_msgs/Image or CompressedImage.")
    parser.add_argument("--input", required=True, action="append",
                        help="video file, folder of images, or one image; with --cameras once per camera, "
                             "or once for all")
    parser.add_argument("--output", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--topic", default="/camera/image_raw",
                        help="image topic (default /camera/image_raw; with --compressed the "
                             "image_transport convention <topic>/compressed is used unless the "
                             "topic already ends in /compressed)")
    parser.add_argument("--frame-id", default="camera",
                        help="header frame_id (default camera; with --cameras each camera's name, e.g. cam_a)")
    parser.add_argument("--cameras", metavar="NS,NS,...",
                        help="one image topic per camera namespace, <camera>/<--image-topic> (replaces --topic)")
    parser.add_argument("--image-topic", default="image_raw",
                        help="topic name under each camera namespace with --cameras (default image_raw)")
    parser.add_argument("--offsets", metavar="N,N,...",
                        help="with --cameras and one --input: the frame each camera starts at, after "
                             "--first (default 0 for all)")
    parser.add_argument("--rate", type=float, default=10.0, metavar="HZ",
                        help="frames per second of the header stamps (default 10)")
    parser.add_argument("--start", type=float, metavar="SECONDS",
                        help="stamp of the first frame, seconds since the epoch (default: now)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="use every N-th input frame, starting with frame 0 (default 1)")
    parser.add_argument("--first", type=int, default=0, metavar="N",
                        help="skip the input frames before frame N (default 0)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="write at most N frames")
    parser.add_argument("--compressed", choices=sorted(COMPRESSIONS),
                        help="store CompressedImage in this format instead of raw Image")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q",
                        help="JPEG quality 0..100 with --compressed jpeg (default 90)")
    parser.add_argument("--encoding", choices=list(ENCODINGS), default="bgr8",
                        help="raw Image encoding (default bgr8)")
    parser.add_argument("--storage", choices=list(STORAGES), default="sqlite3",
                        help="rosbag2 storage plugin (default sqlite3)")
    parser.set_defaults(func=run)


def compressed_topic(topic: str) -> str:
    """``topic`` with the image_transport suffix ``/compressed`` (unless it has it)."""
    return topic if topic.endswith("/compressed") else topic.rstrip("/") + "/compressed"


def camera_streams(args: argparse.Namespace) -> list[tuple[str, str, str, int]]:
    """``(topic, frame_id, input, first frame)`` of each stream the arguments ask for."""
    if args.cameras is None:
        if len(args.input) != 1 or args.offsets is not None:
            raise ValueError("several --input and --offsets need --cameras")
        return [(args.topic, args.frame_id, args.input[0], args.first)]
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    if not cameras or any(not c.startswith("/") or c == "/" for c in cameras):
        raise ValueError(f"--cameras takes absolute camera namespaces such as /cam_a,/cam_b, got {args.cameras!r}")
    if len(args.input) not in (1, len(cameras)):
        raise ValueError(f"give one --input for all cameras or one per camera ({len(cameras)}), got {len(args.input)}")
    offsets = [0] * len(cameras)
    if args.offsets is not None:
        if len(args.input) != 1:
            raise ValueError("--offsets shifts one shared --input; with one input per camera use --first")
        try:
            offsets = [int(v) for v in args.offsets.split(",")]
        except ValueError:
            raise ValueError(f"--offsets takes integers, got {args.offsets!r}") from None
        if len(offsets) != len(cameras) or min(offsets) < 0:
            raise ValueError(f"--offsets needs {len(cameras)} integers >= 0, one per camera, got {args.offsets!r}")
    inputs = args.input * len(cameras) if len(args.input) == 1 else args.input
    return [(f"{camera.rstrip('/')}/{args.image_topic.strip('/')}", camera.strip("/").replace("/", "_"), source,
             args.first + offset) for camera, source, offset in zip(cameras, inputs, offsets)]


def _selected(source: str, first: int, every: int, max_frames: Optional[int]) -> tuple[Iterator[Frame], int]:
    """The frames of ``source`` from index ``first`` (every ``every``-th), at most ``max_frames``, and their count."""
    frames = open_frames(source, every=every)
    skipped = -(-first // every)   # items before frame index first
    total = max(0, len(frames) - skipped)
    total = total if max_frames is None else min(total, max_frames)
    return itertools.islice(((i, px) for i, px in frames if i >= first), max_frames), total


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception make-bag`` with the parsed ``args``; returns the process exit status."""
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
        if args.first < 0:
            raise ValueError(f"--first must be >= 0, got {args.first}")
        start_ns = round((time.time() if args.start is None else args.start) * 1e9)
        topics, total = [], 0
        with contextlib.ExitStack() as bars:
            for topic, frame_id, source, first in camera_streams(args):
                options = ImageBagOptions(
                    topic=compressed_topic(topic) if args.compressed else topic, frame_id=frame_id,
                    rate=args.rate, start_ns=start_ns, compressed=args.compressed, encoding=args.encoding,
                    jpeg_quality=args.jpeg_quality, storage=args.storage)
                options.check()
                frames, count = _selected(source, first, args.every, args.max_frames)
                topics.append((options, frames))
                total += count
            bar = bars.enter_context(tqdm(total=total, unit="frame", disable=None))
            counted = [(options, _advancing(frames, bar)) for options, frames in topics]
            written = write_image_topics(counted, args.output)
    except (ValueError, FrameSourceError, OSError) as exc:   # options, input, output (BagWriteError)
        print(f"trt-perception make-bag: error: {exc}", file=sys.stderr)
        return 1
    for options, _ in topics:
        kind = f"CompressedImage ({options.compressed})" if options.compressed else f"Image ({options.encoding})"
        print(f"{written[options.topic]} frames -> {args.output} ({options.storage}): {options.topic} {kind}, "
              f"frame_id {options.frame_id!r}, {options.rate:g} Hz")
    return 0


def _advancing(frames: Iterable[Frame], bar: Any) -> Iterator[Frame]:
    for frame in frames:
        yield frame
        bar.update(1)
