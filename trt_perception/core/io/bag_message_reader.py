"""The image messages of a bag as serialized ROS 2 messages, for replaying them (ROS-free).

:class:`BagImageMessages` yields the ``sensor_msgs/Image`` and ``CompressedImage`` messages of the
chosen topics in the bag's time order as :class:`BagImage` items: the CDR bytes a ROS 2 publisher
sends as they are (rosbag2 bags store exactly those; ROS 1 bags are converted), with the header
stamp and frame_id read from them. Iterating again reads the bag again (loops).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

from trt_perception.core.io.bag_frame_reader import COMPRESSED_TYPES, IMAGE_TYPES, RosbagFrames, open_bag
from trt_perception.core.io.frame_sources import FrameSourceError


@dataclass(frozen=True)
class BagImage:
    """One image message: ``index`` counts its topic's messages from 0; ``log_ns`` is the bag's
    receive time and ``stamp_ns`` the header stamp (ns since the epoch); ``cdr`` the serialized
    message.
    """

    topic: str
    msgtype: str
    index: int
    log_ns: int
    stamp_ns: int
    frame_id: str
    cdr: bytes


class BagImageMessages:
    """The image messages of ``topics`` (empty: every image topic) of the bag at ``path``.

    Raises :class:`~trt_perception.core.io.frame_sources.FrameSourceError` when the bag cannot be
    opened, a topic is missing or not an image topic (naming the image topics there are), or the
    bag has no image topic at all.
    """

    def __init__(self, path: Union[str, Path], topics: Sequence[str] = ()) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise FrameSourceError(f"bag {self.path} does not exist")
        if not topics:
            with open_bag(self.path) as reader:
                topics = sorted(name for name, info in reader.topics.items()
                                if info.msgtype in IMAGE_TYPES + COMPRESSED_TYPES)
            if not topics:
                raise FrameSourceError(f"bag {self.path} has no sensor_msgs/Image or CompressedImage topic")
        sources = [RosbagFrames(self.path, topic) for topic in topics]   # checks each topic
        self.msgtypes = {s.topic: s.msgtype for s in sources}
        self.counts = {s.topic: s.message_count for s in sources}

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __iter__(self) -> Iterator[BagImage]:
        with open_bag(self.path) as reader:
            typestore = reader.typestore
            connections = [c for c in reader.connections if c.topic in self.msgtypes]
            indices = dict.fromkeys(self.msgtypes, 0)
            for connection, log_ns, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, connection.msgtype)
                cdr = bytes(raw) if reader.is2 else bytes(typestore.serialize_cdr(msg, connection.msgtype))
                stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                yield BagImage(connection.topic, connection.msgtype, indices[connection.topic], log_ns,
                               stamp_ns, msg.header.frame_id, cdr)
                indices[connection.topic] += 1
