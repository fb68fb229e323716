"""process_stats: what /proc says about this process, and the growth measure the leak checks use."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from trt_perception.core.telemetry.process_stats import ProcessSample, growth, sample


def test_sample_sees_memory_threads_and_files_come_and_go(tmp_path):
    before = sample()
    block = np.ones(64 << 20, np.uint8)  # touched: resident
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    with open(tmp_path / "f", "w"):
        during = sample()
    stop.set()
    thread.join()
    assert during.rss_bytes - before.rss_bytes >= 60 << 20 and block.sum() == 64 << 20
    assert during.threads >= before.threads + 1 and during.fds >= before.fds + 1
    assert during.rss_mib == during.rss_bytes / 2**20
    assert sample(os.getpid()).fds == sample().fds  # another process's view of this one, by pid


def mib(values, threads=10, fds=20):
    return [ProcessSample(v << 20, threads, fds) for v in values]


def test_growth_shows_a_steady_leak_and_ignores_noise():
    noisy = mib([100, 300] + [200, 230, 200, 230] * 5)  # warm-up, then +-15 MiB noise
    assert abs(growth(noisy, 2).rss_mib) <= 30
    leaking = mib([100, 300] + [200 + 5 * i for i in range(20)])
    assert growth(leaking, 2).rss_mib == pytest.approx(75, abs=5)  # 5 MiB per sample x 15 samples apart
    more = [ProcessSample(s.rss_bytes, s.threads + (i > 10), s.fds + 2 * (i > 15)) for i, s in enumerate(noisy)]
    grew = growth(more, 2)
    assert (grew.threads, grew.fds) == (1, 2)


def test_growth_needs_samples_after_the_warmup():
    with pytest.raises(ValueError, match="warmup"):
        growth(mib([1, 2, 3, 4]), 1)
    with pytest.raises(ValueError, match="warmup"):
        growth(mib([1] * 10), 0)
