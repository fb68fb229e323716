"""``trt-perception make-bag``: a video file, an image folder or an image -> a rosbag2 bag of one
image topic (``sensor_msgs/Image`` or, with ``--compressed``, ``sensor_msgs/CompressedImage``).

Header stamps advance by ``1 / --rate`` seconds from ``--start`` (default: now); the bag is
written atomically (an interrupted run leaves nothing at ``--output``), never over an existing one.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

from tqdm import tqdm

from trt_perception.core.io.bag_writer import STORAGES
from trt_perception.core.io.frame_sources import FrameSourceError, open_frames
from trt_perception.core.io.frames_to_bag import COMPRESSIONS, ENCODINGS, ImageBagOptions, write_image_bag


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``make-bag`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "make-bag", help="write a video, image folder or image into a rosbag2 image bag",
        description="Write the frames of a video file, an image folder or an image into a new "
                    "rosbag2 bag (sqlite3 or mcap) as sensor_msgs/Image or CompressedImage.")
    parser.add_argument("--input", required=True, help="video file, folder of images, or one image")
    parser.add_argument("--output", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--topic", default="/camera/image_raw",
                        help="image topic (default /camera/image_raw; with --compressed the "
                             "image_transport convention <topic>/compressed is used unless the "
                             "topic already ends in /compressed)")
    parser.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
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


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception make-bag`` with the parsed ``args``; returns the process exit status."""
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
        if args.first < 0:
            raise ValueError(f"--first must be >= 0, got {args.first}")
        options = ImageBagOptions(
            topic=compressed_topic(args.topic) if args.compressed else args.topic,
            frame_id=args.frame_id, rate=args.rate,
            start_ns=round((time.time() if args.start is None else args.start) * 1e9),
            compressed=args.compressed, encoding=args.encoding, jpeg_quality=args.jpeg_quality,
            storage=args.storage)
        options.check()
        frames = open_frames(args.input, every=args.every)
        skipped = -(-args.first // args.every)   # items before frame index --first
        total = max(0, len(frames) - skipped)
        total = total if args.max_frames is None else min(total, args.max_frames)
        selected = itertools.islice(((i, px) for i, px in frames if i >= args.first), args.max_frames)
        count = write_image_bag(tqdm(selected, total=total, unit="frame", disable=None), args.output, options)
    except (ValueError, FrameSourceError, OSError) as exc:   # options, input, output (BagWriteError)
        print(f"trt-perception make-bag: error: {exc}", file=sys.stderr)
        return 1
    kind = f"CompressedImage ({options.compressed})" if options.compressed else f"Image ({options.encoding})"
    print(f"{count} frames -> {args.output} ({options.storage}): {options.topic} {kind}, "
          f"frame_id {options.frame_id!r}, {options.rate:g} Hz")
    return 0
