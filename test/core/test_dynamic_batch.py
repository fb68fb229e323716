"""dynamic-batch: the Reshape edit on a small fixed-batch graph, its refusals, and the shipped SSD
(already converted) giving each image of a batch its batch-1 outputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the dynamic-batch edit needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from trt_perception.cli import main  # noqa: E402
from trt_perception.core.dynamic_batch import DynamicBatchError, check_batch_outputs, convert_file, make_batch_dynamic  # noqa: E402
from trt_perception.core.model_config import load_model_config  # noqa: E402
from trt_perception.core.preprocess import preprocess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
DATA = ROOT / "test" / "data"


def small_ssd_head(target_shape=(1, -1, 4), shared_shape=True, shape_from_constant=False) -> onnx.ModelProto:
    """Conv [1,3,4,4] -> [1,8,4,4] -> Transpose NHWC -> Reshape target_shape -> 'boxes', and a
    second Reshape of the same tensor to [1, -1, 2] -> 'scores' (the tf2onnx SSD pattern)."""
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(8, 3, 1, 1)).astype(np.float32), "w")
    shape_boxes = np.array(target_shape, np.int64)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1])]
    initializers = [weights]
    if shape_from_constant:
        nodes.append(helper.make_node("Constant", [], ["shape_boxes"], value=numpy_helper.from_array(shape_boxes)))
    else:
        initializers.append(numpy_helper.from_array(shape_boxes, "shape_boxes"))
    nodes.append(helper.make_node("Reshape", ["t", "shape_boxes"], ["boxes"]))
    second = "shape_boxes" if shared_shape else "shape_scores"
    if not shared_shape:
        initializers.append(numpy_helper.from_array(np.array([1, -1, 2], np.int64), "shape_scores"))
    nodes.append(helper.make_node("Reshape", ["t", second], ["scores"]))
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 32, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 64, 2])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("shared, from_constant", [(True, False), (False, False), (False, True)])
def test_reshapes_copy_the_batch_and_each_image_gets_its_batch1_outputs(tmp_path, shared, from_constant):
    source, output = tmp_path / "fixed.onnx", tmp_path / "dynamic.onnx"
    onnx.save(small_ssd_head(shared_shape=shared, shape_from_constant=from_constant), str(source))
    report = convert_file(source, output)
    assert report.static_batch == 1 and len(report.reshapes) == 2
    model = onnx.load(str(output))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    used = {name for node in model.graph.node for name in node.input}
    assert {t.name for t in model.graph.initializer} <= used     # the old shapes are gone
    for batch in (2, 3):
        assert check_batch_outputs(output, batch, seed=batch) <= 1e-6


def test_the_fixed_model_mixes_images_of_a_batch_which_the_check_reports(tmp_path):
    """A model whose input dim says nothing but whose Reshape keeps [1, -1, 4]: the check fails."""
    path = tmp_path / "fixed.onnx"
    model = small_ssd_head()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    onnx.save(model, str(path))
    with pytest.raises(DynamicBatchError, match="for a batch of 2"):
        check_batch_outputs(path, 2)


@pytest.mark.parametrize("model, message", [
    (small_ssd_head(target_shape=(-1, 4)), "does not start with the batch 1"),
    (small_ssd_head(target_shape=(2, -1, 4)), "does not start with the batch 1"),
])
def test_a_reshape_that_folds_the_batch_is_refused(model, message):
    with pytest.raises(DynamicBatchError, match=message):
        make_batch_dynamic(model)


def test_an_already_dynamic_model_and_a_runtime_shape_are_refused():
    model = small_ssd_head()
    make_batch_dynamic(model)
    with pytest.raises(DynamicBatchError, match="already has a dynamic batch"):
        make_batch_dynamic(model)
    model = small_ssd_head()
    model.graph.node[2].input[1] = "t"      # shape computed at run time (nonsense, but not constant)
    with pytest.raises(DynamicBatchError, match="computed at run time"):
        make_batch_dynamic(model)


def test_cli_writes_and_checks_and_refuses_overwriting_its_input(tmp_path, capsys):
    source = tmp_path / "fixed.onnx"
    onnx.save(small_ssd_head(), str(source))
    assert main(["dynamic-batch", "--input", str(source), "--output", str(tmp_path / "d.onnx"),
                 "--check-batch", "3"]) == 0
    assert "check: batch of 3" in capsys.readouterr().out
    assert main(["dynamic-batch", "--input", str(source), "--output", str(source)]) == 1
    assert "must differ" in capsys.readouterr().err


def test_shipped_ssd_gives_each_image_of_a_batch_its_batch1_outputs():
    config = load_model_config(MODEL_YAML)
    model = onnx.load(str(config.model_path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    frames = [preprocess(cv2.imread(str(path)), "bgr", config.preprocess)[0].copy()
              for path in sorted(DATA.glob("vtest_*.jpg"))]
    for batch in (1, 2, 3, 4):
        images = np.concatenate(frames[:batch])
        assert check_batch_outputs(config.model_path, batch, images=images) <= 1e-5
