"""Resource usage of a process (Linux ``/proc``), for leak checks in tests and benchmarks.

:func:`sample` reads resident memory, thread count and open file descriptors of this process or
another one, :func:`cpu_seconds` the CPU time it used; :func:`growth` compares samples taken after
a warm-up, which is how the churn and soak checks bound leaks (allocators and DDS settle during
the first cycles/frames, so those are not compared).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Sequence, Union


@dataclass(frozen=True)
class ProcessSample:
    """``rss_bytes``: resident set size (VmRSS); ``threads``: OS threads; ``fds``: open descriptors
    (or, from :func:`growth`, how much each grew).
    """

    rss_bytes: int
    threads: int
    fds: int

    @property
    def rss_mib(self) -> float:
        """Resident set size in MiB."""
        return self.rss_bytes / 2**20


def sample(pid: Union[int, str] = "self") -> ProcessSample:
    """Usage of process ``pid`` (default: this one) now; Linux only, reads ``/proc/<pid>``."""
    rss = threads = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024       # reported in kB
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return ProcessSample(rss, threads, len(os.listdir(f"/proc/{pid}/fd")))


def cpu_seconds(pid: Union[int, str] = "self") -> float:
    """CPU time (user + system, seconds) process ``pid`` has used so far; Linux ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()   # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime, stime: fields 14, 15


def growth(samples: Sequence[ProcessSample], warmup: int) -> ProcessSample:
    """How much ``samples[warmup:]`` grew over the state at the end of the warm-up (as differences).

    RSS moves by tens of MiB from sample to sample (allocator arenas, freed model memory returned
    to the system or not), so its growth is the median of the last quarter of the samples after
    the warm-up minus the median of the first quarter: a steady leak shows, one noisy sample does
    not. Threads and descriptors are exact counts: their growth is the largest value after the
    warm-up minus the value of the last warm-up sample.
    """
    if not 1 <= warmup <= len(samples) - 4:
        raise ValueError(f"need warmup in [1, {len(samples) - 4}] for {len(samples)} samples, got {warmup}")
    base, later = samples[warmup - 1], samples[warmup:]
    quarter = len(later) // 4
    rss = [float(s.rss_bytes) for s in later]
    return ProcessSample(round(statistics.median(rss[-quarter:]) - statistics.median(rss[:quarter])),
                         max(s.threads for s in later) - base.threads,
                         max(s.fds for s in later) - base.fds)
