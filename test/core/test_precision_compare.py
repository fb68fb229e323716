"""Reference comparison and ``trt-perception validate``: errors per tensor, detection agreement,
tolerances; the shipped model against itself (passes) and against a damaged copy (fails)."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_perception.cli import main
from trt_perception.core.precision.compare import CompareError, OutputComparison, Tolerances
from trt_perception.core.precision.validation import ValidationError, candidate_backend

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "ssdlite_pedestrian"
CONFIG = MODEL_DIR / "ssdlite_pedestrian.yaml"
DATA = ROOT / "test" / "data"


def test_tensor_errors_absolute_relative_and_normalized():
    comparison = OutputComparison()
    ref = np.array([[1.0, -2.0, 0.0, 4.0]], np.float32)
    comparison.add({"y": ref}, {"y": ref + np.array([[0.5, 0.0, 0.001, -1.0]], np.float32)})
    s = comparison.summary()["tensors"]["y"]
    assert s["max_abs"] == pytest.approx(1.0)
    assert s["mean_abs"] == pytest.approx(1.501 / 4, rel=1e-5)
    # relative: 0.5/1, 0, 0.001/max(0, 1e-3 * 4) = 0.25, 1/4
    assert s["max_rel"] == pytest.approx(0.5, rel=1e-5)
    assert s["mean_rel"] == pytest.approx((0.5 + 0 + 0.25 + 0.25) / 4, rel=1e-4)
    assert s["normalized"] == pytest.approx(1.501 / 7, rel=1e-5)
    assert Tolerances(max_abs=2.0, mean_rel=0.3).failures(comparison.summary()) == []
    problems = Tolerances(max_abs=0.9, max_rel=0.1).failures(comparison.summary())
    assert len(problems) == 2 and "max_abs 1 > 0.9" in problems[0] and "max_rel" in problems[1]


def test_non_finite_outputs_and_mismatches_are_caught():
    comparison = OutputComparison()
    comparison.add({"y": np.ones((2, 2), np.float32)}, {"y": np.array([[1, np.inf], [np.nan, 1]], np.float32)})
    s = comparison.summary()
    assert s["tensors"]["y"]["non_finite"] == 2 and s["tensors"]["y"]["max_abs"] == np.inf
    assert any("non-finite" in p for p in Tolerances(min_recall=None, min_precision=None).failures(s))
    with pytest.raises(CompareError, match="shape"):
        comparison.add({"y": np.ones((2, 2))}, {"y": np.ones((1, 4))})
    with pytest.raises(CompareError, match="lacks outputs"):
        comparison.add({"y": np.ones(2), "z": np.ones(2)}, {"y": np.ones(2)})
    assert Tolerances().failures(OutputComparison().summary()) == ["no frames were compared"]


def test_candidate_backend_by_file_type():
    assert candidate_backend(Path("m.engine")) == "tensorrt" and candidate_backend(Path("m.PLAN")) == "tensorrt"
    assert candidate_backend(Path("m.int8.onnx")) == "onnxruntime"
    with pytest.raises(ValidationError, match="expected a TensorRT engine"):
        candidate_backend(Path("m.pt"))


def damaged_copy(tmp_path, factor):
    """The shipped model with one weight tensor (a class predictor's) scaled by ``factor``."""
    model = onnx.load(str(MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx"))
    weights = {node.input[1] for node in model.graph.node
               if node.op_type == "Conv" and node.name == "BoxPredictor_0/ClassPredictor/BiasAdd"}
    (name,) = weights
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * factor, name))
    path = tmp_path / f"damaged_{factor}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    for name in ("vtest_000.jpg", "vtest_150.jpg", "vtest_300.jpg"):
        shutil.copy(DATA / name, folder / name)
    return folder


def test_validate_passes_an_identical_candidate_and_fails_a_damaged_one(tmp_path, frames_dir, capsys):
    identical = tmp_path / "copy.onnx"
    shutil.copy(MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx", identical)
    args = ["validate", "--config", str(CONFIG), "--frames", str(frames_dir), "--quiet", "--max-abs", "1e-4"]
    assert main(args + ["--candidate", str(identical), "--json", str(tmp_path / "ok.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "class_predictions" in out
    ok = json.loads((tmp_path / "ok.json").read_text())
    assert ok["passed"] and ok["frames"] == 3 and ok["detections"]["recall"] == 1.0
    assert ok["detections"]["reference_detections"] > 0 and ok["tensors"]["box_encodings"]["max_abs"] == 0.0

    damaged = damaged_copy(tmp_path, 1.5)
    assert main(args + ["--candidate", str(damaged), "--json", str(tmp_path / "bad.json")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "class_predictions: max_abs" in out
    bad = json.loads((tmp_path / "bad.json").read_text())
    assert not bad["passed"] and bad["tensors"]["class_predictions"]["max_abs"] > 0.1
    assert bad["tensors"]["box_encodings"]["max_abs"] == 0.0  # only the class branch was damaged
    assert bad["detections"]["score_drift_mean_abs"] > 0


def test_validate_refuses_what_it_cannot_run(tmp_path, frames_dir, capsys):
    args = ["validate", "--config", str(CONFIG), "--frames", str(frames_dir), "--quiet"]
    (tmp_path / "model.pt").write_bytes(b"x")
    assert main(args + ["--candidate", str(tmp_path / "model.pt")]) == 2
    assert "expected a TensorRT engine" in capsys.readouterr().err
    assert main(args + ["--candidate", str(tmp_path / "missing.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    from trt_perception.core.backends import tensorrt_available
    if not tensorrt_available():  # an engine needs TensorRT: a clear error, not a crash
        (tmp_path / "model.engine").write_bytes(b"not an engine")
        assert main(args + ["--candidate", str(tmp_path / "model.engine")]) == 2
        assert "TensorRT" in capsys.readouterr().err
    assert main(["validate", "--config", str(CONFIG), "--frames", str(tmp_path / "none"),
                 "--candidate", str(MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx")]) == 2
    assert "error:" in capsys.readouterr().err


def test_validate_jittered_draws_judge_the_stability_of_the_verdict(tmp_path, frames_dir, capsys):
    identical = tmp_path / "copy.onnx"
    shutil.copy(MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx", identical)
    args = ["validate", "--config", str(CONFIG), "--frames", str(frames_dir), "--quiet", "--candidate", str(identical),
            "--jitter", "1e-5", "--draws", "2"]
    # The clean run is exact (max_abs 0), but no output survives input noise unchanged: every draw fails.
    assert main(args + ["--max-abs", "0", "--json", str(tmp_path / "strict.json")]) == 1
    out = capsys.readouterr().out
    assert "jittered draws (+-1e-05, 2)" in out and "jitter draw 0: box_encodings: max_abs" in out
    assert "jitter draw 1:" in out
    strict = json.loads((tmp_path / "strict.json").read_text())
    assert not strict["passed"] and strict["tensors"]["box_encodings"]["max_abs"] == 0.0
    assert strict["jitter"] == 1e-5 and len(strict["jittered"]) == 2
    assert all(0 < d["tensors"]["box_encodings"]["max_abs"] < 1e-2 for d in strict["jittered"])
    assert not any(f.startswith("box_encodings") for f in strict["failures"])  # only the draws failed

    # Noise this small moves no FP32 detection: within 1e-2 the clean run and both draws pass, repeatably.
    for name in ("a.json", "b.json"):
        assert main(args + ["--max-abs", "1e-2", "--json", str(tmp_path / name)]) == 0
    assert "PASS" in capsys.readouterr().out
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert [d["detections"]["recall"] for d in first["jittered"]] == [1.0, 1.0]
    assert first["jittered"] == second["jittered"]  # draw k uses seed k


def test_validate_refuses_bad_jitter_settings(tmp_path, frames_dir, capsys):
    args = ["validate", "--config", str(CONFIG), "--frames", str(frames_dir), "--quiet",
            "--candidate", str(MODEL_DIR / "ssdlite_pedestrian_raw_nchw.onnx")]
    for bad in (["--draws", "3"], ["--jitter=-1e-5"], ["--jitter", "1e-5", "--draws", "0"], ["--jitter", "nan"]):
        assert main(args + bad) == 2, bad
        assert "jittered draws need" in capsys.readouterr().err
