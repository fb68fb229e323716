"""The build-engine command: argument checks and cache listing (no TensorRT needed for these);
a real build where TensorRT and a GPU are present."""

import json
from pathlib import Path

import pytest

from trt_perception.cli import main
from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.tensorrt.cache import EngineCache, EngineKey
from trt_perception.core.tensorrt.options import BuildOptions

REPO = Path(__file__).resolve().parents[2]
SSD_CONFIG = REPO / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"


@pytest.mark.parametrize("argv, fragment", [
    (["--config", str(SSD_CONFIG), "--precision", "fp32", "--dla-core", "0"], "DLA runs only FP16 or INT8"),
    (["--config", str(SSD_CONFIG), "--min-batch", "4", "--max-batch", "2"], "min <= opt <= max"),
    (["--onnx", "model.onnx"], "does not exist"),
    (["--onnx", str(SSD_CONFIG), "--calib", "video.avi"], "--calib needs --config"),
    (["--config", str(SSD_CONFIG), "--calib-every", "0"], "every"),
])
def test_bad_arguments_exit_with_2_before_touching_tensorrt(argv, fragment, capsys):
    assert main(["build-engine", *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_list_shows_cached_engines(tmp_path, capsys):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"model")
    cache = EngineCache(tmp_path / "cache")
    cache.store(EngineKey.for_model(onnx, "10.3.0.30", GpuIdentity("Orin", "8.7"), BuildOptions(precision="int8",
                                                                                             calibration_id="c")),
                b"x" * 2_000_000)
    assert main(["build-engine", "--list", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"1 engine(s) in {tmp_path / 'cache'}"
    assert "TensorRT 10.3.0.30, Orin sm8.7, int8, 2.0 MB" in out[1]


def test_build_then_find_in_the_cache(tmp_path, capsys):
    from test_tensorrt_backend import tensorrt_ready
    reason = tensorrt_ready()
    if reason:
        pytest.skip(f"needs TensorRT and a GPU: {reason}")
    argv = ["build-engine", "--config", str(SSD_CONFIG), "--precision", "fp16", "--cache-dir", str(tmp_path),
            "--quiet", "--json", str(tmp_path / "report.json"), "--output", str(tmp_path / "ssd.engine")]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("built:")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["built"] and report["key"]["options"]["precision"] == "fp16"
    assert (tmp_path / "ssd.engine").read_bytes() == Path(report["engine"]).read_bytes()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("found in the cache:")
