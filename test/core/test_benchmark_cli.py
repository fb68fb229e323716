"""The benchmark command: statistics, table, JSON output, argument errors (ONNX Runtime backend)."""

import json
from pathlib import Path

import numpy as np
import pytest

from trt_perception.cli import main
from trt_perception.core.pipeline import Pipeline
from trt_perception.tools.benchmark import format_table, latency_stats, measure

REPO = Path(__file__).resolve().parents[2]
SSD_CONFIG = REPO / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
IMAGE = REPO / "test" / "data" / "vtest_150.jpg"


def test_latency_stats_of_a_known_sample():
    stats = latency_stats([float(v) for v in range(1, 101)])  # 1..100 ms
    assert stats["mean"] == pytest.approx(50.5)
    assert stats["median"] == pytest.approx(50.5)
    assert stats["p90"] == pytest.approx(90.1)   # linear interpolation: 90 + 0.1 * (91 - 90)
    assert stats["p99"] == pytest.approx(99.01)
    assert (stats["min"], stats["max"]) == (1.0, 100.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_table_lists_every_stage():
    table = format_table({"inference": latency_stats([2.0, 4.0])}, "host stage")
    header, row = table.splitlines()
    assert header.split()[:7] == ["host", "stage", "mean", "median", "p90", "p99", "min"]
    assert row.split()[0] == "inference" and float(row.split()[1]) == pytest.approx(3.0)


def test_benchmark_writes_json_for_the_onnxruntime_backend(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["benchmark", "--config", str(SSD_CONFIG), "--backend", "onnxruntime", "--iterations", "6",
               "--warmup", "2", "--threads", "1", "--input", str(IMAGE), "--json", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["backend"] == "onnxruntime" and result["iterations"] == 6 and result["warmup"] == 2
    assert set(result["latency_ms"]) == {"preprocess", "inference", "postprocess", "total"}
    total = result["latency_ms"]["total"]
    assert 0 < total["min"] <= total["median"] <= total["p99"] <= total["max"]
    parts = sum(result["latency_ms"][s]["mean"] for s in ("preprocess", "inference", "postprocess"))
    assert parts == pytest.approx(total["mean"], rel=1e-6)
    assert result["gpu_latency_ms"] is None  # ONNX Runtime on the CPU has no CUDA events
    assert 0 < result["throughput_fps"] <= 1000 / total["min"]
    printed = capsys.readouterr().out
    assert "throughput:" in printed and "inference" in printed


def test_gpu_timings_are_summarized_when_the_backend_reports_them():
    """measure() collects whatever device_timings_ms() returns after each run (here a stand-in
    callable with fixed values, as a GPU backend's CUDA events would give)."""
    frame = np.zeros((48, 64, 3), np.uint8)
    values = iter([{"h2d": 0.1 * i, "compute": 1.0 + i, "d2h": 0.05} for i in range(4)])
    with Pipeline.from_config(SSD_CONFIG, "onnxruntime", threads=1) as pipeline:
        host, device, wall = measure(pipeline, [frame], iterations=4, warmup=1, device_timings=lambda: next(values))
    assert len(host["total"]) == 4 and wall > 0
    assert device["compute"] == [1.0, 2.0, 3.0, 4.0] and device["d2h"] == [0.05] * 4


@pytest.mark.parametrize("argv, fragment", [
    (["--iterations", "0"], "--iterations must be >= 1"),
    (["--size", "12xx"], "--size must be WxH"),
    (["--input", "/no/such/video.avi"], "does not exist"),
])
def test_bad_arguments_exit_with_2(argv, fragment, capsys):
    rc = main(["benchmark", "--config", str(SSD_CONFIG), "--backend", "onnxruntime", *argv])
    assert rc == 2 and fragment in capsys.readouterr().err


def test_tensorrt_backend_without_tensorrt_is_reported(capsys):
    from trt_perception.core.backends import BackendError
    from trt_perception.core.backends.tensorrt import import_tensorrt
    try:
        import_tensorrt()
        pytest.skip("TensorRT is installed here")
    except BackendError:
        pass
    rc = main(["benchmark", "--config", str(SSD_CONFIG), "--backend", "tensorrt", "--iterations", "1"])
    assert rc == 2 and "TensorRT is not installed" in capsys.readouterr().err
