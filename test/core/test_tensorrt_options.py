"""Build options, optimization profiles and build reports: plain logic, no TensorRT needed."""

import pytest

from trt_perception.core.tensorrt.options import BuildOptions, BuildOptionsError
from trt_perception.core.tensorrt.profiles import ProfileError, ProfileShapes, batch_profile
from trt_perception.core.tensorrt.reports import DlaReport, LayerPlacement, ParseProblem, describe_parse_errors


@pytest.mark.parametrize("kwargs, fragment", [
    ({"precision": "int4"}, "precision must be one of"),
    ({"precision": "fp32", "dla_core": 0}, "DLA runs only FP16 or INT8"),
    ({"dla_core": -2}, "dla_core must be -1"),
    ({"workspace_mb": 0}, "workspace_mb must be a positive integer"),
    ({"workspace_mb": True}, "workspace_mb must be a positive integer"),
    ({"min_batch": 2, "opt_batch": 1, "max_batch": 4}, "min <= opt <= max"),
    ({"max_batch": 0}, "integers >= 1"),
    ({"optimization_level": 6}, "optimization_level must be 0..5"),
    ({"gpu_fallback": "yes"}, "gpu_fallback must be true or false"),
])
def test_invalid_options_are_rejected_with_the_reason(kwargs, fragment):
    with pytest.raises(BuildOptionsError, match=fragment):
        BuildOptions(**kwargs)


def test_several_problems_are_reported_together():
    with pytest.raises(BuildOptionsError) as info:
        BuildOptions(precision="bf16", workspace_mb=-1)
    assert "precision" in str(info.value) and "workspace_mb" in str(info.value)


def test_describe_and_workspace_bytes():
    options = BuildOptions(precision="int8", dla_core=1, workspace_mb=512, min_batch=1, opt_batch=2, max_batch=8)
    assert options.workspace_bytes == 512 * 1024 * 1024
    text = options.describe()
    for part in ("int8", "DLA core 1 (GPU fallback)", "batch 1..8 (opt 2)", "workspace 512 MiB"):
        assert part in text
    assert BuildOptions(workspace_mb=None).workspace_bytes is None


def test_key_fields_hold_every_option():
    fields = BuildOptions(precision="fp32", max_batch=4).key_fields()
    assert fields["precision"] == "fp32" and fields["max_batch"] == 4
    assert set(fields) == {"precision", "workspace_mb", "dla_core", "gpu_fallback", "min_batch", "opt_batch",
                           "max_batch", "optimization_level", "calibration_id"}


def test_dynamic_batch_gets_a_profile_from_the_batch_range():
    options = BuildOptions(min_batch=1, opt_batch=4, max_batch=8)
    shapes = batch_profile({"images": (-1, 3, 300, 300)}, options)
    assert shapes == [ProfileShapes("images", (1, 3, 300, 300), (4, 3, 300, 300), (8, 3, 300, 300))]


def test_static_model_needs_no_profile():
    assert batch_profile({"images": (1, 3, 300, 300)}, BuildOptions()) == []
    assert batch_profile({"images": (4, 3, 300, 300)}, BuildOptions(min_batch=4, opt_batch=4, max_batch=4)) == []


def test_static_batch_cannot_serve_a_batch_range():
    with pytest.raises(ProfileError, match="fixed batch of 1"):
        batch_profile({"images": (1, 3, 300, 300)}, BuildOptions(max_batch=4))


def test_dynamic_spatial_dimension_is_rejected():
    with pytest.raises(ProfileError, match=r"dynamic dimension\(s\) \[2, 3\]"):
        batch_profile({"images": (-1, 3, -1, -1)}, BuildOptions())


def test_parse_errors_name_the_node_from_the_onnx_graph_when_the_parser_does_not():
    nodes = [("conv_1", "Conv"), ("weird_op", "MyCustomOp")]
    problems = [ParseProblem("No importer registered for op: MyCustomOp", node_index=1, code="UNSUPPORTED_NODE"),
                ParseProblem("Assertion failed", node_index=0, node_name="conv_1_from_parser"),
                ParseProblem("model has no graph")]
    text = describe_parse_errors("model.onnx", problems, nodes)
    lines = text.splitlines()
    assert lines[0] == "TensorRT could not parse model.onnx (3 errors):"
    assert "node 1 'weird_op' (MyCustomOp) [UNSUPPORTED_NODE]: No importer registered" in lines[1]
    assert "node 0 'conv_1_from_parser' (Conv): Assertion failed" in lines[2]
    assert lines[3].strip() == "model: model has no graph"


def test_dla_report_lists_the_layers_that_fall_back():
    report = DlaReport(0, [LayerPlacement("conv1", "CONVOLUTION", "DLA"),
                           LayerPlacement("reshape", "SHUFFLE", "GPU"),
                           LayerPlacement("conv2", "CONVOLUTION", "DLA")])
    assert [layer.name for layer in report.fallback] == ["reshape"]
    text = report.format()
    assert text.splitlines()[0] == "DLA core 0: 2 of 3 layers on the DLA, 1 fall back to the GPU:"
    assert "reshape (SHUFFLE)" in text
    assert report.to_dict() == {"dla_core": 0, "layers": 3, "gpu_fallback": [{"name": "reshape", "type": "SHUFFLE"}]}
    assert DlaReport(1, [LayerPlacement("c", "CONVOLUTION", "DLA")]).format().endswith("none falls back to the GPU")
