"""FP16 range check: a planted overflow is caught and named with its layers; results are cached;
the shipped model's ranges as they are."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trt_perception.cli import main
from trt_perception.core.precision.fp16_range import FP16_MAX, measure_ranges
from trt_perception.core.precision.result_cache import ResultCache
from trt_perception.core.tensorrt.layer_precision import read_layer_precisions
from trt_perception.testing.tiny_onnx import chain_model
from trt_perception.testing.tiny_onnx import random_frames as frames

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"


def test_planted_overflow_is_caught_and_its_layers_named(tmp_path):
    model = chain_model(tmp_path / "blow.onnx", blow_up="conv_b")
    report = measure_ranges(model, "x", frames(3))
    overflow = {r.tensor: r for r in report.overflow}
    assert "conv_b_out" in overflow and overflow["conv_b_out"].producer == "conv_b"
    assert overflow["conv_b_out"].op_type == "Conv" and overflow["conv_b_out"].max_abs >= FP16_MAX
    assert "conv_a_out" not in overflow and "relu_a" not in overflow  # before the planted layer: fine
    layers = report.fp32_layers()
    assert list(layers)[:2] == ["conv_b", "relu_b"] or {"conv_b", "relu_b"} <= set(layers)
    assert "produces conv_b_out" in layers["conv_b"] and "reads conv_b_out" in layers["relu_b"]
    assert "conv_a" not in layers
    assert "OVERFLOW: conv_b_out" in report.format()
    assert report.headroom() < 1


def test_a_model_within_range_flags_nothing(tmp_path):
    report = measure_ranges(chain_model(tmp_path / "ok.onnx"), "x", frames(3))
    assert report.overflow == [] and report.near == [] and report.fp32_layers() == {}
    assert report.headroom() > 1 and len(report.ranges) == 7  # 4 convs + 3 relus
    assert "no tensor reaches" in report.format()


def test_near_fraction_flags_tensors_close_to_the_limit(tmp_path):
    report = measure_ranges(chain_model(tmp_path / "ok.onnx"), "x", frames(2))
    peak = max(r.max_abs for r in report.ranges)
    from dataclasses import replace
    tight = replace(report, near_fraction=peak * 0.99 / FP16_MAX)
    assert tight.near and tight.overflow == [] and tight.fp32_layers()


def test_ranges_are_cached(tmp_path, monkeypatch):
    model = chain_model(tmp_path / "blow.onnx", blow_up="conv_c")
    cache = ResultCache(tmp_path / "cache")
    first = measure_ranges(model, "x", frames(2), cache=cache)
    import onnxruntime

    def no_session(*args, **kwargs):
        raise AssertionError("the cached ranges should have been used")
    monkeypatch.setattr(onnxruntime, "InferenceSession", no_session)
    second = measure_ranges(model, "x", frames(2), cache=cache)
    assert second.ranges == first.ranges and second.overflow[0].producer == "conv_c"
    with pytest.raises(AssertionError, match="cached ranges"):  # other frames: measured again
        measure_ranges(model, "x", frames(2, seed=9), cache=cache)


def test_fp16_check_command_on_the_shipped_model(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("vtest_000.jpg", "vtest_300.jpg"):
        shutil.copy(ROOT / "test" / "data" / name, folder / name)
    rc = main(["fp16-check", "--config", str(CONFIG), "--frames", str(folder), "--quiet", "--cache-dir",
               str(tmp_path / "cache"), "--json", str(tmp_path / "r.json"), "--write-layers", str(tmp_path / "l.json")])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    # What is true for this model: every activation fits FP16 with a wide margin.
    assert rc == 0 and report["overflow"] == [] and report["near"] == [] and "no tensor reaches" in out
    assert report["frames"] == 2 and len(report["ranges"]) > 150
    assert 1 < report["headroom"] < np.inf
    assert read_layer_precisions(tmp_path / "l.json") == {}
