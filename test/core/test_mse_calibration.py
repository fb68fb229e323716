"""MSE activation calibration: the clip value that minimizes the quantization error of a
histogram, checked on cases computed by hand and on a planted outlier distribution."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_perception.core.mse_calibration import mse_ranges, mse_threshold, quantization_mse
from trt_perception.core.quantize import QuantizeError, quantize_model
from trt_perception.testing.tiny_onnx import conv_model, random_frames


def test_quantization_mse_of_a_hand_computed_case():
    # bins [0,1) [1,2) [2,3) [3,4): centres 0.5 1.5 2.5 3.5, one value each; 2 levels of step 1.5 up to 3
    hist, edges = np.ones(4), np.arange(5.0)
    # 0.5 -> 0 (err .25), 1.5 -> 1.5 (0), 2.5 -> 3 (.25), 3.5 -> clipped to 3 (.25): mean 0.1875
    assert quantization_mse(hist, edges, 3.0, levels=2) == pytest.approx(0.1875)
    # threshold 4, step 2: 0.5 -> 0 (.25), 1.5 -> 2 (.25), 2.5 -> 2 (.25), 3.5 -> 4 (.25)
    assert quantization_mse(hist, edges, 4.0, levels=2) == pytest.approx(0.25)
    assert mse_threshold(hist, edges, levels=2, start_bin=0) == 3.0  # of the edges 1..4, 3 is best
    assert np.isnan(quantization_mse(np.zeros(4), edges, 3.0))


def test_mse_beats_min_max_on_a_planted_outlier_distribution():
    rng = np.random.default_rng(0)
    values = np.concatenate([np.abs(rng.normal(0.0, 1.0, 200_000)), [60.0]])  # one far outlier
    hist, edges = np.histogram(values, bins=2048)
    threshold = mse_threshold(hist, edges)
    # error(t) ~ rounding (t / 127)^2 / 12 + clipping (60 - t)^2 / 200001, least at t = 60 / (1 + 200001 /
    # (127^2 * 12)) = 29.5: the outlier is clipped halfway, the bulk (< 5) keeps steps of 0.23 instead of 0.47
    assert threshold == pytest.approx(29.5, rel=0.02)
    assert quantization_mse(hist, edges, threshold) < 0.6 * quantization_mse(hist, edges, edges[-1])
    # without outliers (a uniform distribution) nothing is worth clipping: the range stays the max
    hist, edges = np.histogram(rng.uniform(0.0, 6.0, 200_000), bins=2048)
    assert mse_threshold(hist, edges) == pytest.approx(6.0, rel=0.01)


def test_mse_threshold_is_the_best_edge_of_a_brute_force_search():
    rng = np.random.default_rng(3)
    hist, edges = np.histogram(np.abs(rng.standard_t(3, 50_000)), bins=300)
    best = min(edges[1 + 20:], key=lambda t: quantization_mse(hist, edges, t))
    assert mse_threshold(hist, edges, start_bin=20) == pytest.approx(best)
    assert mse_ranges({"a": (hist, edges)}, start_bin=20) == {"a": pytest.approx(best)}
    with pytest.raises(ValueError, match="edges"):
        mse_threshold(hist, edges[:-1])


def test_quantize_with_mse_ranges_is_symmetric_and_within_the_observed_range(tmp_path):
    model = conv_model(tmp_path / "tiny.onnx")
    calibration = random_frames(16, 1, (1, 3, 16, 16))
    mse = quantize_model(model, tmp_path / "mse.onnx", "x", calibration, method="mse")
    minmax = quantize_model(model, tmp_path / "minmax.onnx", "x", calibration, method="minmax")

    def input_scale(path):
        graph = onnx.load(str(path)).graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        q = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
        assert np.all(inits[q.input[2]] == 0)  # symmetric: zero point 0 (TensorRT)
        return float(inits[q.input[1]])

    assert 0 < input_scale(mse.output) <= input_scale(minmax.output) * 1.001
    with pytest.raises(QuantizeError, match="symmetric"):
        quantize_model(model, tmp_path / "u8.onnx", "x", calibration, method="mse", activations="uint8")
