"""Writing rosbag2 bags with ``rosbags``, no ROS installation needed.

* :func:`package_typestore`: a ``rosbags`` type store with the ROS 2 standard messages plus the
  messages of ``trt_perception`` and ``vision_msgs``, read from their ``.msg`` files, so bags can
  hold ``Detection2DArray``, ``Skeleton2DArray`` and ``FrameLatency`` with the same type hashes
  (RIHS01) as the rosidl-generated types.
* :func:`atomic_bag`: a ``rosbags`` writer that builds the bag in a temporary directory next to the
  target and renames it to the target only when the bag was closed cleanly: an interrupted or
  failed run leaves no bag (at most a stray ``.<name>.*.tmp`` directory) at the target name.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, Union

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from trt_perception.core.io.atomic_write import fsync_directory

#: storage plugins by the name ``ros2 bag`` uses
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

#: packages whose messages :func:`package_typestore` adds to the standard ones
MSG_PACKAGES = ("trt_perception", "vision_msgs")

#: rosbag2 metadata version written (8: readable by Iron and newer, and by Humble's yaml reader)
BAG_VERSION: Literal[8] = 8

#: the source tree, for the ``.msg`` files when the packages are not installed anywhere
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_SOURCE_MSG_DIRS = {"trt_perception": _SOURCE_ROOT / "msg",
                    "vision_msgs": _SOURCE_ROOT / "third_party" / "vision_msgs" / "msg"}


class BagWriteError(ValueError):
    """A bag that cannot be written (target exists, unknown storage, message types not found)."""


def msg_dir(package: str) -> Path:
    """The directory of ``package``'s ``.msg`` files: ``share/<package>/msg`` under an
    ``AMENT_PREFIX_PATH`` prefix or this Python's prefix (pip setup), else the source tree.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        candidate = Path(prefix) / "share" / package / "msg"
        if candidate.is_dir():
            return candidate
    source = _SOURCE_MSG_DIRS.get(package)
    if source is not None and source.is_dir():
        return source
    raise BagWriteError(f"no message definitions of {package} found (looked for share/{package}/msg "
                        f"under {', '.join(prefixes)})")


def package_typestore(packages: Sequence[str] = MSG_PACKAGES) -> Any:
    """The ``rosbags`` type store of the latest ROS 2 distribution plus ``packages``' messages."""
    typestore = get_typestore(Stores.LATEST)
    types: dict[str, Any] = {}
    for package in packages:
        for path in sorted(msg_dir(package).glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{package}/msg/{path.stem}"))
    typestore.register(types)
    return typestore


@contextlib.contextmanager
def atomic_bag(path: Union[str, Path], storage: str = "sqlite3") -> Iterator[Writer]:
    """An open ``rosbags`` :class:`Writer` whose bag appears at ``path`` when the block exits cleanly.

    ``storage`` is ``sqlite3`` or ``mcap``. Raises :class:`BagWriteError` when ``path`` exists (bags
    are never overwritten) or the storage is unknown. On an exception nothing is left at ``path``.
    """
    if storage not in STORAGES:
        raise BagWriteError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    target = Path(path).expanduser()
    if target.exists():
        raise BagWriteError(f"{target} exists already; bags are never overwritten, remove it or choose "
                            "another output")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        # the bag keeps its final name inside the scratch directory, so its files are named after it
        with Writer(scratch / target.name, version=BAG_VERSION, storage_plugin=STORAGES[storage]) as writer:
            yield writer
        _fsync_tree(scratch / target.name)
        os.rename(scratch / target.name, target)
        fsync_directory(target.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fsync_tree(directory: Path) -> None:
    """Flush every file of ``directory`` and the directory itself to the disk (before the rename)."""
    for item in directory.iterdir():
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_directory(directory)


class BagRecorder:
    """Collects serialized messages from any thread and writes them into an open ``rosbags``
    writer on :meth:`flush`, from the thread that opened it (sqlite3 storage is bound to that
    thread); a connection is added for each topic on its first message (types from ``typestore``,
    e.g. :func:`package_typestore`).
    """

    def __init__(self, writer: Writer, typestore: Any) -> None:
        self.writer = writer
        self.typestore = typestore
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._queue: collections.deque[tuple[str, str, bytes, int]] = collections.deque()

    def __call__(self, topic: str, msgtype: str, data: bytes, log_ns: int) -> None:
        """Queue ``data`` (CDR) of ``msgtype`` on ``topic`` with bag time ``log_ns`` (thread safe)."""
        self._queue.append((topic, msgtype, data, log_ns))

    def flush(self) -> None:
        """Write the queued messages (call from the thread that opened the writer)."""
        while self._queue:
            topic, msgtype, data, log_ns = self._queue.popleft()
            if topic not in self.connections:
                self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
                self.counts[topic] = 0
            self.writer.write(self.connections[topic], log_ns, data)
            self.counts[topic] += 1
