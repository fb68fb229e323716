"""Output-error-minimizing INT8 weight rounding: a case solved by hand, its invariants, the
patch moments against a direct computation, and a planted rounding error in a quantized model."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_perception.core.precision.sensitivity import onnx_runner
from trt_perception.core.quantize import QuantizeError, quantize_model
from trt_perception.core.weight_rounding import PatchMoments, output_error, reconstruction_error, round_weights
from trt_perception.testing.tiny_onnx import random_frames, rounding_bias_model


def test_correlated_inputs_mix_the_roundings_of_a_hand_solved_case():
    # two weights of 0.4 steps reading the same value (H all ones): nearest rounding (0, 0) errs by
    # -0.8 x, rounding the first up (1, 0) by 0.2 x: error 0.04 instead of 0.64
    weights, scales, moments = np.array([[0.4, 0.4]]), np.array([1.0]), np.ones((2, 2))
    values = round_weights(weights, scales, moments)
    assert values.tolist() == [[1, 0]] and values.dtype == np.int8
    assert output_error(weights, scales, values, moments)[0] == pytest.approx(0.04)
    # uncorrelated inputs (H = I): each weight on its own, so nearest rounding is best
    assert round_weights(weights, scales, np.eye(2)).tolist() == [[0, 0]]


@pytest.mark.parametrize("per_channel_moments", [False, True])
def test_never_worse_than_nearest_and_within_one_step(per_channel_moments):
    rng = np.random.default_rng(5)
    weights = rng.normal(size=(16, 27))
    scales = np.abs(weights).max(axis=1) / 127
    x = rng.normal(size=(16 if per_channel_moments else 1, 27, 500)) + 2 * rng.normal(size=(1, 1, 500))
    moments = np.einsum("cip,cjp->cij", x, x) / 500
    moments = moments if per_channel_moments else moments[0]
    nearest = np.clip(np.round(weights / scales[:, None]), -127, 127)
    values = round_weights(weights, scales, moments)
    assert np.all(np.abs(values - weights / scales[:, None]) < 1) and np.abs(values).max() <= 127
    before, after = output_error(weights, scales, nearest, moments), output_error(weights, scales, values, moments)
    assert np.all(after <= before + 1e-12) and after.sum() < 0.5 * before.sum()
    with pytest.raises(ValueError, match="moments"):
        round_weights(weights, scales, np.eye(3))


def test_patch_moments_match_a_direct_computation():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 2, 7, 6))
    plain = PatchMoments((4, 2, 3, 3), strides=(2, 2), max_positions=1000)
    plain.add(x)
    depthwise = PatchMoments((2, 1, 3, 3), group=2, max_positions=1000)
    depthwise.add(x)
    patches = [x[0, :, r:r + 3, c:c + 3].reshape(-1) for r in range(0, 5, 2) for c in range(0, 4, 2)]
    assert np.allclose(plain.moments(), np.mean([np.outer(p, p) for p in patches], axis=0))
    channel_1 = [x[0, 1, r:r + 3, c:c + 3].reshape(-1) for r in range(5) for c in range(4)]
    assert depthwise.moments().shape == (2, 9, 9)
    assert np.allclose(depthwise.moments()[1], np.mean([np.outer(p, p) for p in channel_1], axis=0))
    padded = PatchMoments((2, 1, 3, 3), group=2, pads=(1, 1, 1, 1), max_positions=1000)  # border patches too
    padded.add(x[:, :, :2, :2])  # smaller than the kernel: only the zero padding makes patches
    tiny = np.pad(x[0, 0, :2, :2], 1)
    corners = [tiny[r:r + 3, c:c + 3].reshape(-1) for r in range(2) for c in range(2)]
    assert np.allclose(padded.moments()[0], np.mean([np.outer(p, p) for p in corners], axis=0))
    with pytest.raises(ValueError, match="depthwise"):
        PatchMoments((4, 2, 3, 3), group=2)


def test_weight_rounding_removes_a_planted_rounding_error_of_a_quantized_model(tmp_path):
    """All small weights sit at 0.6 steps: nearest rounding moves them all up on non-negative
    inputs; the output-aware rounding keeps the scales and brings the output error down."""
    model = rounding_bias_model(tmp_path / "planted.onnx")
    calibration = random_frames(16, 1, (1, 3, 16, 16))
    ranges = tmp_path / "ranges.json"
    plain = quantize_model(model, tmp_path / "plain.onnx", "x", calibration, op_types=("Conv",), ranges_cache=ranges)
    rounded = quantize_model(model, tmp_path / "rounded.onnx", "x", calibration, op_types=("Conv",),
                             ranges_cache=ranges, weight_rounding=True)
    assert (tmp_path / "ranges.rounding.npz").is_file()

    def weights(path):
        graph = onnx.load(str(path)).graph
        return {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}

    before, after = weights(plain.output), weights(rounded.output)
    assert before.keys() == after.keys() and any(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.abs(before[k].astype(int) - after[k]).max() <= 1 for k in before)
    held_out = random_frames(8, 9, (1, 3, 16, 16))
    reference, runs = onnx_runner(model, "x"), {"plain": onnx_runner(plain.output, "x"),
                                               "rounded": onnx_runner(rounded.output, "x")}
    error = {name: np.mean([np.mean((run(x)["y"] - reference(x)["y"]) ** 2) for x in held_out])
             for name, run in runs.items()}
    assert error["rounded"] < 0.5 * error["plain"]
    again = quantize_model(model, tmp_path / "again.onnx", "x", calibration, op_types=("Conv",),
                           ranges_cache=ranges, weight_rounding=True)  # rounding from the cache: the same
    assert all(np.array_equal(weights(again.output)[k], after[k]) for k in after)


def test_asymmetric_rounding_compensates_an_input_perturbation():
    """The quantized network's inputs x_hat differ from the float x (here a gain of 0.985 and a
    shift, as a clipped or re-rounded activation would): rounding for E[(w_q . x_hat - w . x)^2]
    beats rounding for the float-input error, measured on the same patches."""
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(8, 18))
    scales = np.abs(weights).max(axis=1) / 127
    x = rng.normal(size=(18, 4000)) + 1.5 * rng.normal(size=(1, 4000)) + 1.0
    x_hat = 0.985 * x + 0.02 + 0.01 * rng.normal(size=x.shape)
    moments, cross, reference = (a @ b.T / x.shape[1] for a, b in ((x_hat, x_hat), (x_hat, x), (x, x)))
    float_inputs = round_weights(weights, scales, reference)
    asymmetric = round_weights(weights, scales, moments, cross=cross, reach=2)
    assert np.abs(asymmetric - weights / scales[:, None]).max() < 2 and np.abs(asymmetric).max() <= 127

    def measured(values):  # the error on the patches themselves
        return np.mean(((values * scales[:, None]) @ x_hat - weights @ x) ** 2, axis=1)

    for values in (float_inputs, asymmetric):
        assert np.allclose(reconstruction_error(weights, scales, values, moments, cross, reference), measured(values))
    assert np.all(measured(asymmetric) <= measured(float_inputs) + 1e-12)
    # most of what is left is the shift times the weights' sum: a constant per channel, which
    # only bias correction can remove
    assert measured(asymmetric).sum() < 0.7 * measured(float_inputs).sum()
    # one step (floor or ceiling) compensates less of the 1.5 % gain than two
    one_step = round_weights(weights, scales, moments, cross=cross, reach=1)
    assert measured(asymmetric).sum() < measured(one_step).sum() < measured(float_inputs).sum()
    # without a perturbation the asymmetric objective is the float-input one
    assert np.array_equal(round_weights(weights, scales, reference, cross=reference), float_inputs)
    with pytest.raises(ValueError, match="reach"):
        round_weights(weights, scales, moments, cross=cross, reach=0)


def test_patch_cross_moments_match_a_direct_computation():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 1, 2, 5, 5))
    plain = PatchMoments((3, 2, 3, 3), max_positions=1000)
    plain.add(x, y)
    patches = [(x[0, :, r:r + 3, c:c + 3].reshape(-1), y[0, :, r:r + 3, c:c + 3].reshape(-1))
               for r in range(3) for c in range(3)]
    assert np.allclose(plain.cross_moments(), np.mean([np.outer(p, q) for p, q in patches], axis=0))
    assert np.allclose(plain.moments(), np.mean([np.outer(p, p) for p, _ in patches], axis=0))
    with pytest.raises(ValueError, match="every input or with none"):
        plain.add(x)
    alone = PatchMoments((3, 2, 3, 3))
    alone.add(x)
    with pytest.raises(ValueError, match="reference"):
        alone.cross_moments()


def test_asymmetric_weight_rounding_of_a_quantized_model(tmp_path):
    """``weight_rounding="asymmetric"``: rounded on the full INT8 model's inputs (its own cache
    file), moved at most two steps from nearest rounding, and on held-out frames closer to FP32
    than nearest rounding; unknown modes are refused."""
    model = rounding_bias_model(tmp_path / "planted.onnx")
    calibration = random_frames(16, 1, (1, 3, 16, 16))
    ranges = tmp_path / "ranges.json"
    runs = {}
    for rounding in ("nearest", "asymmetric"):
        out = quantize_model(model, tmp_path / f"{rounding}.onnx", "x", calibration, op_types=("Conv",),
                             ranges_cache=ranges, weight_rounding=rounding).output
        runs[rounding] = onnx_runner(out, "x")
    assert (tmp_path / "ranges.rounding-asymmetric.npz").is_file() and not (tmp_path / "ranges.rounding.npz").exists()
    held_out = random_frames(8, 9, (1, 3, 16, 16))
    reference = onnx_runner(model, "x")
    error = {name: np.mean([np.mean((run(x)["y"] - reference(x)["y"]) ** 2) for x in held_out])
             for name, run in runs.items()}
    assert error["asymmetric"] < 0.5 * error["nearest"]
    values = {path: {t.name: numpy_helper.to_array(t).astype(int) for t in onnx.load(str(path)).graph.initializer
                     if t.data_type == onnx.TensorProto.INT8} for path in (tmp_path / "nearest.onnx",
                                                                           tmp_path / "asymmetric.onnx")}
    before, after = values.values()
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    assert all(np.abs(before[k] - after[k]).max() <= 2 for k in before)  # within reach of the float weights
    with pytest.raises(QuantizeError, match="weight rounding"):
        quantize_model(model, tmp_path / "bad.onnx", "x", calibration, op_types=("Conv",), ranges_cache=ranges,
                       weight_rounding="stochastic")
