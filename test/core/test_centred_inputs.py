"""Centred convolution inputs: the float function is kept, INT8 uses the whole range."""

import cv2
import numpy as np
import onnx

from trt_perception.core.centred_inputs import centre_bounded_inputs
from trt_perception.core.precision.sensitivity import onnx_runner
from trt_perception.core.quantize import quantize_model
from trt_perception.testing.tiny_onnx import conv_model, random_frames, relu6_model

SHAPE = (1, 3, 16, 16)


def test_centring_keeps_the_float_function_and_folds_the_shift(tmp_path):
    source = relu6_model(tmp_path / "relu6.onnx")
    model = onnx.load(str(source))
    assert centre_bounded_inputs(model) == ["conv2", "conv3"]  # conv1 reads the image, not a Clip
    onnx.checker.check_model(model)
    nodes = {n.name: n for n in model.graph.node}
    assert [n.op_type for n in model.graph.node] == ["Conv", "Clip", "Pad", "Sub", "Conv", "Clip", "Sub", "Conv"]
    assert nodes["conv2"].input[0] == "conv2/centred" and nodes["conv2/centre"].input[0] == "conv2/centre_padded"
    assert list(next(a for a in nodes["conv2"].attribute if a.name == "pads").ints) == [0, 0, 0, 0]
    assert nodes["conv3/centre"].input[0] == "r2" and len(nodes["conv3"].input) == 3  # a bias was added
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert float(inits["conv3/centre_value"]) == 3.0
    centred = tmp_path / "centred.onnx"
    onnx.save(model, str(centred))
    before, after = onnx_runner(source, "x"), onnx_runner(centred, "x")
    for frame in random_frames(4, shape=SHAPE):
        expected, got = before(frame)["y"], after(frame)["y"]
        assert np.abs(expected).max() > 1 and np.allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_unbounded_activations_are_left_alone(tmp_path):
    model = onnx.load(str(conv_model(tmp_path / "relu.onnx")))  # Relu: no upper bound to centre on
    assert centre_bounded_inputs(model) == []
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "Conv"]


def test_centred_inputs_lower_the_int8_error(tmp_path):
    source = relu6_model(tmp_path / "relu6.onnx")
    calibration, held_out = random_frames(16, seed=1, shape=SHAPE), random_frames(8, seed=2, shape=SHAPE)
    reference = onnx_runner(source, "x")
    errors = {}
    for centred in (False, True):
        path = tmp_path / f"int8_{centred}.onnx"
        quantize_model(source, path, "x", calibration, method="minmax", centred_inputs=centred)
        run = onnx_runner(path, "x")
        errors[centred] = np.mean([np.abs(run(f)["y"] - reference(f)["y"]).mean() for f in held_out])
        quantized = onnx.load(str(path))
        quantize_inputs = {n.input[0] for n in quantized.graph.node if n.op_type == "QuantizeLinear"}
        assert ("conv3/centred" in quantize_inputs) == centred and ("r2" in quantize_inputs) != centred
    # conv2's and conv3's inputs get half the step (conv1's, the image, and the weights do not):
    # measured 0.016 -> 0.013
    assert errors[True] < 0.9 * errors[False], errors


def test_quantize_command_centres_inputs(tmp_path, capsys):
    from trt_perception.cli import main
    relu6_model(tmp_path / "relu6.onnx")
    (tmp_path / "relu6.yaml").write_text(
        "task: ssd\nmodel: relu6.onnx\ninput: x\noutputs: {box_encodings: y}\n"
        "preprocess: {width: 16, height: 16, mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5]}\n")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(random_frames(3, shape=(16, 16, 3))):
        cv2.imwrite(str(frames / f"{i}.png"), ((frame + 1) * 127.5).astype(np.uint8))
    out = tmp_path / "relu6.int8.onnx"
    assert main(["quantize", "--config", str(tmp_path / "relu6.yaml"), "--calib", str(frames), "--centred-inputs",
                 "--output", str(out)]) == 0
    assert "calibration on 3 frames" in capsys.readouterr().out
    quantized = onnx.load(str(out))
    assert {"conv2/centred", "conv3/centred"} <= {n.input[0] for n in quantized.graph.node
                                                  if n.op_type == "QuantizeLinear"}
