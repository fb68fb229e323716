"""Q/DQ INT8 quantization with ONNX Runtime: the result is explicitly quantized, runs in the
ONNX Runtime backend and stays close to the float model."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_perception.core.backends import create_backend
from trt_perception.core.precision.sensitivity import onnx_runner
from trt_perception.core.quantize import QuantizeError, quantize_model
from trt_perception.core.tensorrt.calibration import has_qdq_nodes
from trt_perception.testing.tiny_onnx import conv_model, random_frames, residual_model, rounding_bias_model


def frames(n, seed=1):
    return random_frames(n, seed, (1, 3, 16, 16))


def run(path, x):
    with create_backend("onnxruntime", str(path)) as backend:
        return backend.infer({"x": x})["y"].copy()


@pytest.mark.parametrize("method", ["entropy", "percentile", "minmax"])
def test_quantized_model_runs_in_the_onnxruntime_backend_close_to_float(tmp_path, method):
    model = conv_model(tmp_path / "tiny.onnx")
    report = quantize_model(model, tmp_path / "tiny.int8.onnx", "x", frames(16), method=method)
    assert report.frames == 16 and report.method == method
    assert report.quantize_nodes > 0 and report.dequantize_nodes > report.quantize_nodes  # weights: DQ only
    assert has_qdq_nodes(report.output)
    quantized = onnx.load(str(report.output))
    zero_points = [numpy_helper.to_array(t) for t in quantized.graph.initializer if t.name.endswith("zero_point")]
    assert zero_points and all(np.all(z == 0) for z in zero_points)  # symmetric: zero points are 0
    producer = {out: node.op_type for node in quantized.graph.node for out in node.output}
    quantized_tensors = {node.input[0] for node in quantized.graph.node if node.op_type == "QuantizeLinear"}
    assert producer["y"] == "Conv" and "c1" not in quantized_tensors  # layer outputs stay float
    assert {"x", "r1"} <= quantized_tensors  # the inputs of both convolutions are quantized
    for x in frames(4, seed=7):
        want, got = run(model, x), run(report.output, x)
        assert not np.array_equal(got, want)  # really quantized
        error = np.abs(got - want)
        assert error.mean() < 0.02 * np.abs(want).max()
        if method == "minmax":  # no clipping: every value within a few quantization steps
            assert error.max() < 0.08 * np.abs(want).max()


def test_uint8_activations_are_asymmetric_and_close_to_float(tmp_path):
    """ONNX Runtime only: UINT8 activations with a zero point; weights stay symmetric INT8."""
    model = conv_model(tmp_path / "tiny.onnx")
    report = quantize_model(model, tmp_path / "u8.onnx", "x", frames(16), method="minmax", activations="uint8")
    initializers = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(report.output)).graph.initializer}
    activation_zeros = [v for k, v in initializers.items() if k.endswith("zero_point") and v.dtype == np.uint8]
    weight_zeros = [v for k, v in initializers.items() if k.endswith("zero_point") and v.dtype == np.int8]
    assert activation_zeros and any(np.any(z != 0) for z in activation_zeros)  # x in [-1, 1]: zero point ~128
    assert weight_zeros and all(np.all(z == 0) for z in weight_zeros)
    for x in frames(3, seed=7):
        want, got = run(model, x), run(report.output, x)
        # mean only: ONNX Runtime's U8S8 kernels on x86 without VNNI saturate some sums (max error ~10 %)
        assert not np.array_equal(got, want) and np.abs(got - want).mean() < 0.02 * np.abs(want).max()


def _inputs_from_dq(path, node_name):
    graph = onnx.load(str(path)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    node = next(n for n in graph.node if n.name == node_name)
    return [producer.get(name) == "DequantizeLinear" for name in node.input]


@pytest.mark.parametrize("settings", [{"op_types": ("Conv",)}, {"nodes_to_exclude": ["add"]}])
def test_a_float_node_reads_float_even_where_its_input_also_feeds_a_quantized_node(tmp_path, settings):
    """The Relu output feeds conv_b (INT8) and the Add: only conv_b reads it quantized."""
    model = residual_model(tmp_path / "res.onnx")
    report = quantize_model(model, tmp_path / "q.onnx", "x", random_frames(8), method="minmax", **settings)
    assert _inputs_from_dq(report.output, "conv_b")[0] and _inputs_from_dq(report.output, "add") == [False, False]
    everything = quantize_model(model, tmp_path / "all.onnx", "x", random_frames(8), method="minmax")
    assert _inputs_from_dq(everything.output, "add") == [True, True]
    x = random_frames(1, seed=4)[0]
    want = onnx_runner(model, "x")(x)["y"]
    got, got_all = onnx_runner(report.output, "x")(x)["y"], onnx_runner(everything.output, "x")(x)["y"]
    assert np.abs(got - want).mean() < np.abs(got_all - want).mean()  # the float add adds no rounding


def test_bad_requests_are_refused(tmp_path):
    model = conv_model(tmp_path / "tiny.onnx")
    with pytest.raises(QuantizeError, match="method must be one of"):
        quantize_model(model, tmp_path / "o.onnx", "x", frames(2), method="kl")
    with pytest.raises(QuantizeError, match="activations must be one of"):
        quantize_model(model, tmp_path / "o.onnx", "x", frames(2), activations="int4")
    with pytest.raises(QuantizeError, match="no input 'images'"):
        quantize_model(model, tmp_path / "o.onnx", "images", frames(2))
    with pytest.raises(QuantizeError, match="no calibration frames"):
        quantize_model(model, tmp_path / "o.onnx", "x", [])
    report = quantize_model(model, tmp_path / "q.onnx", "x", frames(4), method="minmax")
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_model(report.output, tmp_path / "qq.onnx", "x", frames(2))
    assert not (tmp_path / "o.onnx").exists()


def test_quantize_command_on_a_model_config(tmp_path, capsys):
    import shutil
    from pathlib import Path

    from trt_perception.cli import main
    conv_model(tmp_path / "tiny.onnx")
    (tmp_path / "tiny.yaml").write_text(
        "task: ssd\nmodel: tiny.onnx\ninput: x\noutputs: {box_encodings: y}\n"
        "preprocess: {width: 16, height: 16, mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5]}\n")
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    data = Path(__file__).resolve().parents[1] / "data"
    for name in ("vtest_000.jpg", "vtest_150.jpg", "vtest_300.jpg"):
        shutil.copy(data / name, frames_dir / name)
    out = tmp_path / "tiny.int8.onnx"
    rc = main(["quantize", "--config", str(tmp_path / "tiny.yaml"), "--calib", str(frames_dir),
               "--method", "percentile", "--output", str(out)])
    assert rc == 0 and has_qdq_nodes(out)
    assert "percentile calibration on 3 frames" in capsys.readouterr().out
    rounded = tmp_path / "tiny.mse.onnx"
    rc = main(["quantize", "--config", str(tmp_path / "tiny.yaml"), "--calib", str(frames_dir),
               "--method", "mse", "--weight-rounding", "--output", str(rounded)])
    assert rc == 0 and has_qdq_nodes(rounded) and "mse calibration on 3 frames" in capsys.readouterr().out
    asymmetric = tmp_path / "tiny.asymmetric.onnx"
    rc = main(["quantize", "--config", str(tmp_path / "tiny.yaml"), "--calib", str(frames_dir),
               "--method", "mse", "--weight-rounding", "asymmetric", "--output", str(asymmetric)])
    assert rc == 0 and has_qdq_nodes(asymmetric) and "mse calibration on 3 frames" in capsys.readouterr().out
    int8 = [{t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
             if t.data_type == onnx.TensorProto.INT8} for path in (out, rounded, asymmetric)]
    assert int8[0].keys() == int8[1].keys() == int8[2].keys()
    assert all(any(not np.array_equal(int8[0][k], other[k]) for k in int8[0]) for other in int8[1:])
    with pytest.raises(SystemExit):
        main(["quantize", "--config", str(tmp_path / "tiny.yaml"), "--calib", str(frames_dir),
              "--weight-rounding", "stochastic", "--output", str(tmp_path / "bad.onnx")])
    assert "invalid choice" in capsys.readouterr().err
    rc = main(["quantize", "--config", str(tmp_path / "tiny.yaml"), "--calib", str(tmp_path / "missing"),
               "--output", str(tmp_path / "x.onnx")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_bias_correction_removes_a_planted_mean_error_of_int8_convolutions(tmp_path):
    """Weights that INT8 rounds all the same way shift each output channel's mean; bias
    correction (measured on the calibration frames) removes most of that shift on other frames,
    for a convolution with an INT32 bias and for one without a bias (a float bias is added).
    """
    model = rounding_bias_model(tmp_path / "planted.onnx")
    ranges = tmp_path / "ranges.json"
    plain = quantize_model(model, tmp_path / "plain.onnx", "x", frames(16), op_types=("Conv",), ranges_cache=ranges)
    corrected = quantize_model(model, tmp_path / "corrected.onnx", "x", iter(frames(16)), op_types=("Conv",),
                               ranges_cache=ranges, bias_correction=True)
    assert plain.ranges_cached is False and corrected.ranges_cached is True  # frames read for the correction only
    graph = onnx.load(str(corrected.output)).graph
    conv2 = next(node for node in graph.node if node.name == "conv2")
    assert len(conv2.input) == 3 and conv2.input[2] in {t.name for t in graph.initializer}
    held_out = frames(8, seed=9)
    shift = {}
    for name, report in (("plain", plain), ("corrected", corrected)):
        diffs = np.stack([run(report.output, x) - run(model, x) for x in held_out])
        shift[name] = np.abs(diffs.mean(axis=(0, 1, 3, 4)))  # mean error per output channel
    assert shift["plain"].min() > 0.01  # the planted error is there without the correction
    assert shift["corrected"].max() < 0.2 * shift["plain"].min()
