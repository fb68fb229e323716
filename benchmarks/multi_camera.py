"""N cameras on the CPU: one multi_camera_node (batched inference) vs one detector_node process
per camera vs N detector_nodes in one process.

For each N (default 1, 2, 4) a bag with N camera topics is made from ``vtest.avi`` (each camera
starting at another frame, ``trt-perception make-bag --cameras``), then each way of running the
detector is started with ``trt-perception run`` and measured with ``trt-perception replay``'s rate
benchmark (the ros2_benchmark method of phase 1):

- ``batched``: ``run --nodes batch --cameras ...`` (one process, one model, one call per batch);
- ``processes``: N processes ``run --nodes detector --cameras /cam_i`` (one model each);
- ``one process``: ``run --nodes detector --cameras ...`` (N detector_nodes in one process, N
  separate pipelines).

Measured per configuration: the peak rate per camera at which at most 5 % of each camera's frames
go unanswered (``replay --find-peak``; reported as total frames/s = N x the per-camera peak),
round-trip p50/p95 at ``--latency-rate-hz`` (5 Hz) per camera (``replay --rate-hz``), and the
resident memory (VmRSS) of all the configuration's processes together: after start (models loaded)
and the largest total sampled during the trials. Every node runs ONNX Runtime with ``--threads``
CPU threads (default 1), through a parameter file written for the run (``/**:`` section).

Targets (issue 14): at N = 4 the batched node uses at most 1.5x the memory of a single-camera
node (the N = 1 ``processes`` configuration), and its peak total throughput is at least that of
the separate processes. The defaults are the full measurement (several minutes per
configuration); ``--trial-s 1 --peak-steps 1 --repeats 1 --cameras 1,2`` is a smoke run. Results:
``benchmarks/results/multi_camera.md`` and ``.json`` (``--out``). Needs the venv
(``scripts/setup_env.sh``); sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a
``ROS_DOMAIN_ID`` (``--domain-id``) for every process it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.telemetry.process_stats import sample

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"
CLI = str(Path(sys.executable).with_name("trt-perception"))
WAYS = ("batched", "processes", "one process")


def cameras_of(n: int) -> list[str]:
    """The camera namespaces of an N-camera run: /cam_0 ... /cam_{n-1}."""
    return [f"/cam_{i}" for i in range(n)]


class Nodes:
    """The processes of one configuration, started with ``trt-perception run``, stopped at exit;
    samples their total RSS in the background.
    """

    def __init__(self, commands: list[list[str]], env: dict[str, str], log_dir: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.logs = []
        for i, command in enumerate(commands):
            log = open(log_dir / f"node_{i}.log", "w")   # noqa: SIM115 - closed in stop()
            self.logs.append(log)
            self.procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True))
        self.peak_rss_mib = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def wait_active(self, timeout_s: float = 120.0) -> None:
        """Until every process printed its nodes' state; RuntimeError when one failed."""
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline()
                if not line or time.monotonic() > deadline or "failed" in line:
                    raise RuntimeError(f"a node process did not come up: {line.strip() or 'exited'}")
                if line.rstrip().endswith(": active"):
                    break
        self._sampler.start()

    def rss_mib(self) -> float:
        """Total VmRSS of the processes now, MiB."""
        return sum(sample(proc.pid).rss_mib for proc in self.procs)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak_rss_mib = max(self.peak_rss_mib, self.rss_mib())
            except OSError:   # a process ended
                return

    def stop(self) -> None:
        """SIGINT each process (clean shutdown), then wait."""
        self._stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, log in zip(self.procs, self.logs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def commands(way: str, cameras: list[str], params: Path, input_type: str) -> list[list[str]]:
    """The ``trt-perception run`` command line(s) of ``way``."""
    base = [CLI, "run", "--params", str(params), "--input-type", input_type]
    if way == "batched":
        return [base + ["--nodes", "batch", "--cameras", ",".join(cameras)]]
    if way == "processes":
        return [base + ["--nodes", "detector", "--cameras", camera] for camera in cameras]
    return [base + ["--nodes", "detector", "--cameras", ",".join(cameras)]]


def replay(bag: Path, env: dict[str, str], report: Path, extra: list[str]) -> dict[str, Any]:
    """Run ``trt-perception replay --bag`` with ``extra`` (a rate benchmark); its JSON report."""
    command = [CLI, "replay", "--bag", str(bag), "--report", str(report), *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"replay failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def round_trip(report: dict[str, Any]) -> dict[str, Optional[float]]:
    """Round-trip p50/p95 (ms) of the fixed-rate trial: the worst camera's."""
    (trial,) = report["fixed_rate"]
    cams = trial["cameras"].values()
    out: dict[str, Optional[float]] = {}
    for key in ("p50", "p95"):
        values = [c["round_trip_ms"][key] for c in cams if c["round_trip_ms"][key] is not None]
        out[key] = max(values) if values else None
    out["unanswered"] = trial["unanswered"]
    return out


def measure(way: str, n: int, bag: Path, env: dict[str, str], params: Path, args: argparse.Namespace,
            work: Path) -> dict[str, Any]:
    """One configuration: start, 5 Hz latency trial, peak search, memory; stopped at the end."""
    cameras = cameras_of(n)
    logs = work / f"{way.replace(' ', '_')}_{n}"
    logs.mkdir()
    nodes = Nodes(commands(way, cameras, params, args.input_type), env, logs)
    try:
        nodes.wait_active()
        time.sleep(args.settle_s)
        started_rss = nodes.rss_mib()
        common = ["--trial-s", str(args.trial_s), "--wait", "60"]
        latency = replay(bag, env, logs / "latency.json", ["--rate-hz", f"{args.latency_rate_hz:g}", *common])
        peak = replay(bag, env, logs / "peak.json",
                      ["--find-peak", "--peak-range", args.peak_range, "--peak-steps", str(args.peak_steps),
                       "--repeats", str(args.repeats), "--max-unanswered", str(args.max_unanswered), *common])
    finally:
        nodes.stop()
    per_camera = peak["peak"]["peak_hz"]
    return {"way": way, "cameras": n, "processes": len(nodes.procs),
            "peak_hz_per_camera": per_camera, "peak_total_fps": None if per_camera is None else per_camera * n,
            "latency_ms_at_rate": round_trip(latency), "rss_mib_started": started_rss,
            "rss_mib_peak": nodes.peak_rss_mib}


def fmt(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The results page: settings, the table, the two targets."""
    lines = ["# Several cameras on the CPU: batched node vs one node per camera", "",
             f"`benchmarks/multi_camera.py` ({', '.join(f'{k} {v}' for k, v in settings.items())}). "
             "Peak: highest per-camera rate with <= "
             f"{100 * settings['max_unanswered']:g} % unanswered frames per camera, shown as total frames/s; "
             f"latency: round trip (published -> detections received) at {settings['latency_rate_hz']:g} Hz "
             "per camera, worst camera; RSS: all processes of the configuration together.", "",
             "| cameras | way | processes | peak total (frames/s) | p50 (ms) | p95 (ms) | unanswered at rate | "
             "RSS after start (MiB) | RSS peak (MiB) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lat = r["latency_ms_at_rate"]
        lines.append(f"| {r['cameras']} | {r['way']} | {r['processes']} | {fmt(r['peak_total_fps'])} | "
                     f"{fmt(lat['p50'])} | {fmt(lat['p95'])} | {100 * lat['unanswered']:.1f} % | "
                     f"{fmt(r['rss_mib_started'])} | {fmt(r['rss_mib_peak'])} |")
    single = next((r for r in rows if r["cameras"] == 1 and r["way"] == "processes"), None)
    n_max = max(r["cameras"] for r in rows)
    batched = next((r for r in rows if r["cameras"] == n_max and r["way"] == "batched"), None)
    separate = next((r for r in rows if r["cameras"] == n_max and r["way"] == "processes"), None)
    lines.append("")
    if single and batched:
        ratio = batched["rss_mib_peak"] / single["rss_mib_peak"]
        lines.append(f"- Memory: batched node at N = {n_max} / single-camera node = {ratio:.2f} "
                     f"(target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'}).")
    if batched and separate and batched["peak_total_fps"] and separate["peak_total_fps"]:
        ratio = batched["peak_total_fps"] / separate["peak_total_fps"]
        lines.append(f"- Throughput: batched / separate processes at N = {n_max} = {ratio:.2f} "
                     f"(target >= 1: {'met' if ratio >= 1 else 'NOT met'}).")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="1,2,4", help="camera counts (default 1,2,4)")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"configurations (default {','.join(WAYS)})")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per node (default 1)")
    parser.add_argument("--trial-s", type=float, default=10.0, help="seconds per trial (default 10)")
    parser.add_argument("--peak-range", default="1,40", help="per-camera rates searched, Hz (default 1,40)")
    parser.add_argument("--peak-steps", type=int, default=5, help="bisection steps (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="trials per rate in the peak search (default 2)")
    parser.add_argument("--max-unanswered", type=float, default=0.05, help="peak criterion (default 0.05)")
    parser.add_argument("--latency-rate-hz", type=float, default=5.0, help="latency trial rate per camera")
    parser.add_argument("--frames", type=int, default=40, help="frames per camera in the bag (default 40)")
    parser.add_argument("--input-type", choices=("compressed", "raw"), default="compressed",
                        help="camera topics: JPEG (default; the 1.3 MB raw frames of best-effort topics were "
                             "lost in transit on the loaded development machine) or raw bgr8")
    parser.add_argument("--settle-s", type=float, default=2.0, help="seconds after start before measuring")
    parser.add_argument("--domain-id", default=os.environ.get("ROS_DOMAIN_ID", "37"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multi_camera")
    args = parser.parse_args()
    counts = [int(v) for v in args.cameras.split(",")]
    ways = [w.strip() for w in args.ways.split(",")]
    if any(w not in WAYS for w in ways) or any(n < 1 for n in counts):
        parser.error(f"--ways from {WAYS}, --cameras integers >= 1")
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(args.domain_id)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="multi_camera_") as tmp:
        work = Path(tmp)
        params = work / "params.yaml"
        params.write_text(f"/**:\n  ros__parameters:\n    backend: onnxruntime\n    threads: {args.threads}\n"
                          "    log_summary_period: 0.0\n")
        runs = [(n, way) for n in counts for way in ways if not (n == 1 and way == "one process")]
        for n, way in tqdm(runs, desc="configurations", unit="config"):
            bag = work / f"bag_{n}"
            if not bag.exists():
                offsets = ",".join(str(37 * i) for i in range(n))
                subprocess.run([CLI, "make-bag", "--input", str(VIDEO), "--output", str(bag), "--cameras",
                                ",".join(cameras_of(n)), "--offsets", offsets, "--every", "5",
                                "--max-frames", str(args.frames)]
                               + (["--compressed", "jpeg"] if args.input_type == "compressed" else []),
                               env=env, check=True, capture_output=True)
            row = measure(way, n, bag, env, params, args, work)
            tqdm.write(json.dumps(row))
            rows.append(row)
    settings = {"threads": args.threads, "trial_s": args.trial_s, "peak_range": args.peak_range,
                "peak_steps": args.peak_steps, "repeats": args.repeats, "max_unanswered": args.max_unanswered,
                "latency_rate_hz": args.latency_rate_hz, "frames": args.frames, "input_type": args.input_type,
                "cpus": os.cpu_count()}
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(rows, settings))
    print(markdown(rows, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
