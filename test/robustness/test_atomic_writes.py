"""Files written by the package survive a SIGKILL of the writer at any moment.

A writer runs in a child process and is killed (SIGKILL, no clean-up possible) at chosen points,
stopped there by a hook on ``os.fsync``, and at random moments. Whatever the moment, the target
name holds the old content or the complete new one (atomic_write), an entry the cache either
serves intact or refuses as corrupt (engine cache), or no bag at all (make-bag).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIZE = 4 << 20
OLD, NEW = b"O" * SIZE, b"N" * SIZE

#: child-side prelude: os.fsync number STOP_AT (1-based) prints "stopped" and waits to be killed
PRELUDE = """
import os, sys, time
STOP_AT = int(sys.argv[2])
calls = [0]
real_fsync = os.fsync

def fsync(fd):
    real_fsync(fd)
    calls[0] += 1
    if calls[0] == STOP_AT:
        print("stopped", flush=True)
        time.sleep(600)

os.fsync = fsync
target = sys.argv[1]
"""


def run_child(body: str, *args: object) -> subprocess.Popen:
    script = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)


def kill_when(child: subprocess.Popen, line: str) -> None:
    """Wait until the child prints ``line``, then SIGKILL it."""
    assert child.stdout is not None
    got = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert got == line, f"child printed {got!r} (exit {child.returncode})"
    assert child.returncode == -signal.SIGKILL


def strays(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f".{name}.*.tmp"))


WRITE = """
from trt_perception.core.io.atomic_write import atomic_open
with atomic_open(target, "wb") as out:
    out.write(b"N" * (2 << 20))
    out.flush()
    if STOP_AT == 0:
        print("half written", flush=True)
        time.sleep(600)
    out.write(b"N" * (2 << 20))
print("done", flush=True)
"""


@pytest.mark.parametrize("stop_at, line, expected", [
    (0, "half written", OLD),  # killed in the middle of writing the data
    (1, "stopped", OLD),       # data written and fsynced, not yet renamed
    (2, "stopped", NEW),       # renamed, directory not yet fsynced
])
def test_atomic_write_killed_at_each_step_leaves_the_old_or_the_complete_new_file(tmp_path, stop_at, line, expected):
    target = tmp_path / "result.bin"
    target.write_bytes(OLD)
    kill_when(run_child(WRITE, target, stop_at), line)
    assert target.read_bytes() == expected
    assert len(strays(tmp_path, target.name)) == (0 if expected == NEW else 1)  # a stray is only ever a .tmp
    if expected == OLD:
        assert strays(tmp_path, target.name)[0].stat().st_size <= SIZE


def test_atomic_write_killed_at_random_moments_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "result.bin"
    body = """
    from trt_perception.core.io.atomic_write import atomic_write_bytes
    print("started", flush=True)
    for i in range(1_000_000):
        atomic_write_bytes(target, (b"N" if i % 2 else b"O") * (4 << 20))
    """
    rng = random.Random(8)
    for _ in range(12):
        child = run_child(body, target, -1)
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert not target.exists() or target.read_bytes() in (OLD, NEW)


def test_new_files_get_the_usual_permissions(tmp_path):
    from trt_perception.core.io.atomic_write import atomic_write_text

    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644


# ---- engine cache -----------------------------------------------------------------------------------

STORE = """
import dataclasses
from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.tensorrt.cache import EngineCache, EngineKey
from trt_perception.core.tensorrt.options import BuildOptions
key = EngineKey.for_model(sys.argv[3], "10.3.0", GpuIdentity("Orin", "8.7"), BuildOptions(precision="fp16"))
cache = EngineCache(target)
if STOP_AT >= 0:
    cache.store(key, b"N" * (4 << 20))
    print("done", flush=True)
else:
    print("started", flush=True)
    for i in range(1_000_000):
        cache.store(key, (b"N" if i % 2 else b"O") * (4 << 20))
"""


@pytest.mark.parametrize("stop_at, served", [
    (1, OLD),   # new engine fsynced, not renamed: the old entry is intact
    (2, None),  # new engine in place, old sidecar: refused as corrupt, never served
    (3, None),  # new engine, new sidecar written but not renamed: the same
    (4, NEW),   # sidecar renamed: the new entry is complete
])
def test_engine_cache_store_killed_at_each_step_never_serves_a_wrong_engine(engine_cache, stop_at, served):
    cache, key, model = engine_cache
    cache.store(key, OLD)
    kill_when(run_child(STORE, cache.directory, stop_at, model), "stopped")
    found = cache.lookup(key)
    assert found.engine == served
    if served is None:
        assert found.reason.startswith("corrupt")
        assert cache.get_or_build(key, lambda: NEW).built  # a corrupt entry is rebuilt
        assert cache.lookup(key).engine == NEW


def test_engine_cache_store_killed_at_random_moments_never_serves_a_wrong_engine(engine_cache):
    cache, key, model = engine_cache
    rng = random.Random(9)
    served = set()
    for _ in range(12):
        child = run_child(STORE, cache.directory, -1, model)
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        found = cache.lookup(key)
        assert found.engine in (None, OLD, NEW)
        if found.engine is None:
            assert found.reason.split(":")[0] in ("missing", "corrupt")
        else:
            assert json.loads(cache.sidecar_path(key).read_text())["engine_bytes"] == SIZE
        served.add(found.engine)
    assert served & {OLD, NEW}  # the check saw complete entries too, not only refusals


# ---- bags (trt-perception make-bag) -------------------------------------------------------------------


def scratch_bytes(directory: Path, name: str) -> int:
    """Bytes written so far into the scratch directories of bag ``name`` (files come and go)."""
    total = 0
    for scratch in strays(directory, name):
        for path in scratch.rglob("*"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size if path.is_file() else 0
    return total


def make_bag(output: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trt_perception.cli", "make-bag", "--input",
                             str(REPO / "data" / "vtest_sample.mp4"), "--output", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_make_bag_killed_mid_way_leaves_no_bag_and_a_complete_run_leaves_a_readable_one(tmp_path):
    from rosbags.rosbag2 import Reader

    output = tmp_path / "frames_bag"
    child = make_bag(output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None and scratch_bytes(tmp_path, output.name) < 1 << 20:
        time.sleep(0.01)
    assert child.poll() is None, "make-bag finished before it could be killed mid-way"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert not output.exists()

    done = make_bag(output)
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
    with Reader(output) as reader:
        assert reader.message_count == 100  # every frame of the sample video
