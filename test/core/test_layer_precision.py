"""Per-layer precision without TensorRT: which layers a choice pins, the file format, the build
options and engine cache key that carry it, build-engine's argument checks."""

import json
from pathlib import Path

import pytest

from trt_perception.cli import main
from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.pipeline_factory import PipelineOptions, backend_options
from trt_perception.core.tensorrt.cache import EngineKey
from trt_perception.core.tensorrt.layer_precision import (
    LayerPrecisionError,
    as_key,
    assign_layers,
    describe,
    read_layer_precisions,
    write_layer_precisions,
)
from trt_perception.core.tensorrt.options import BuildOptions, BuildOptionsError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"


def test_layers_are_matched_by_node_name_and_parser_suffixes():
    layers = ["conv1", "conv1_1", "conv10", "relu", "block/add", "block/add_2"]
    assigned, missing = assign_layers(layers, {"conv1": "fp32", "block/add": "fp16", "gone": "fp32"})
    assert assigned == {0: "fp32", 1: "fp32", 4: "fp16", 5: "fp16"}
    assert missing == ["gone"]
    assert assign_layers(layers, {}) == ({}, [])


def test_layer_precision_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "layers.json"
    write_layer_precisions(path, "m.onnx", {"b": "fp32", "a": "fp16"}, {"b": "overflows"})
    data = json.loads(path.read_text())
    assert data["model"] == "m.onnx" and data["layers"]["b"] == {"precision": "fp32", "reason": "overflows"}
    layers = read_layer_precisions(path)
    assert layers == {"b": "fp32", "a": "fp16"} and as_key(layers) == (("a", "fp16"), ("b", "fp32"))
    assert describe(layers) == "1 layer(s) pinned to FP32, 1 layer(s) pinned to FP16"
    with pytest.raises(LayerPrecisionError, match="layer precisions must be"):
        write_layer_precisions(path, "m.onnx", {"a": "int8"}, {})
    (tmp_path / "bad.json").write_text('{"layers": ["a"]}')
    with pytest.raises(LayerPrecisionError, match="cannot read"):
        read_layer_precisions(tmp_path / "bad.json")
    with pytest.raises(LayerPrecisionError, match="cannot read"):
        read_layer_precisions(tmp_path / "missing.json")


def test_build_options_check_pinned_layers():
    pins = as_key({"conv": "fp32"})
    assert "1 layer(s) pinned" in BuildOptions(precision="fp16", layer_precisions=pins).describe()
    BuildOptions(precision="int8", layer_precisions=as_key({"a": "fp16", "b": "fp32"}))
    with pytest.raises(BuildOptionsError, match="fp16 build can pin layers only to"):
        BuildOptions(precision="fp16", layer_precisions=as_key({"conv": "fp16"}))
    with pytest.raises(BuildOptionsError, match="fp32 build can pin layers only to nothing"):
        BuildOptions(precision="fp32", layer_precisions=pins)
    with pytest.raises(BuildOptionsError, match="sorted"):
        BuildOptions(layer_precisions=(("b", "fp32"), ("a", "fp32")))
    with pytest.raises(BuildOptionsError, match="pairs"):
        BuildOptions(layer_precisions=(("a", "int8"),))


def test_pinned_layers_are_part_of_the_engine_key_and_old_keys_are_unchanged(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    gpu = GpuIdentity("Orin", "8.7")
    plain = EngineKey.for_model(model, "10.3", gpu, BuildOptions())
    assert "layer_precisions" not in plain.fields()["options"]  # entries built before pins keep their key
    a = EngineKey.for_model(model, "10.3", gpu, BuildOptions(layer_precisions=as_key({"x": "fp32"})))
    b = EngineKey.for_model(model, "10.3", gpu, BuildOptions(layer_precisions=as_key({"y": "fp32"})))
    assert len({plain.digest, a.digest, b.digest}) == 3
    assert a.fields()["options"]["layer_precisions"] == [["x", "fp32"]]
    assert json.loads(json.dumps(a.fields())) == a.fields()  # what the sidecar stores compares equal


def test_build_engine_checks_precision_arguments_before_tensorrt(tmp_path, capsys):
    onnx_file = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian_raw_nchw.onnx"
    assert main(["build-engine", "--onnx", str(onnx_file), "--fp16-check", "x.avi"]) == 2
    assert "--fp16-check needs --config" in capsys.readouterr().err
    assert main(["build-engine", "--onnx", str(onnx_file), "--layer-precision", str(tmp_path / "none.json")]) == 2
    assert "cannot read layer precision file" in capsys.readouterr().err
    write_layer_precisions(tmp_path / "l.json", "m", {"a": "fp16"}, {})
    assert main(["build-engine", "--onnx", str(onnx_file), "--precision", "fp16",
                 "--layer-precision", str(tmp_path / "l.json")]) == 2
    assert "can pin layers only to" in capsys.readouterr().err
    assert main(["build-engine", "--config", str(CONFIG), "--precision", "fp32",
                 "--fp16-check", str(ROOT / "test" / "data")]) == 2
    assert "fp16/int8 builds" in capsys.readouterr().err


def test_the_node_parameter_reaches_the_tensorrt_backend_only():
    """``layer_precision_file`` (a node parameter) is passed to the TensorRT backend; empty is none."""
    options = PipelineOptions.from_mapping({"layer_precision_file": "layers.json", "threads": 2})
    assert backend_options(options, "tensorrt", "cpu", "model.yaml")["layer_precision_file"] == "layers.json"
    assert backend_options(PipelineOptions(), "tensorrt", "cpu")["layer_precision_file"] is None
    assert "layer_precision_file" not in backend_options(options, "onnxruntime", "cpu")
