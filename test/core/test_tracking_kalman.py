"""The tracker's Kalman filter: the factorized form equals the textbook 8-dimensional filter, and a
constant-velocity box is predicted over any time step."""

import numpy as np
import pytest

from trt_perception.core.tracking import kalman


def dense(mean: np.ndarray, cov3: np.ndarray) -> np.ndarray:
    """The 8 x 8 covariances float[N, 8, 8] of the factorized ones float[N, 4, 3]."""
    cov = np.zeros((len(mean), 8, 8))
    for a in range(4):
        cov[:, a, a], cov[:, a + 4, a + 4] = cov3[:, a, 0], cov3[:, a, 2]
        cov[:, a, a + 4] = cov[:, a + 4, a] = cov3[:, a, 1]
    return cov


def textbook_step(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One predict + update of one track with full matrices (x' = F x, P' = F P F^T + Q, K = P H^T S^-1)."""
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    sigma = np.array([kalman.ACCELERATION_STD] * 2 + [kalman.SIZE_ACCELERATION_STD] * 2) * mean[3]
    g = np.zeros((8, 4))
    g[:4] = dt * dt / 2 * np.eye(4)
    g[4:] = dt * np.eye(4)
    q = g @ np.diag(sigma ** 2) @ g.T
    mean, cov = f @ mean, f @ cov @ f.T + q
    h = np.eye(4, 8)
    r = np.eye(4) * (kalman.MEASUREMENT_STD * mean[3]) ** 2
    s = h @ cov @ h.T + r
    gain = cov @ h.T @ np.linalg.inv(s)
    return mean + gain @ (z - h @ mean), (np.eye(8) - gain @ h) @ cov


def test_factorized_filter_equals_the_dense_one():
    rng = np.random.default_rng(0)
    z0 = np.array([[100.0, 200.0, 40.0, 100.0], [600.0, 300.0, 80.0, 200.0]])
    mean, cov = kalman.initiate(z0)
    ref = [(mean[i].copy(), dense(mean, cov)[i]) for i in range(2)]
    for step in range(20):
        dt = [0.0667, 0.1, 0.5, 0.033][step % 4]
        z = z0 + rng.normal(0, 3.0, z0.shape) + step * np.array([5.0, 1.0, 0.2, 0.4])
        kalman.predict(mean, cov, dt)
        kalman.update(mean, cov, np.arange(2), z)
        for i in range(2):
            ref[i] = textbook_step(ref[i][0], ref[i][1], z[i], dt)
            assert mean[i] == pytest.approx(ref[i][0], rel=1e-9, abs=1e-9)
            np.testing.assert_allclose(dense(mean, cov)[i], ref[i][1], rtol=1e-9, atol=1e-9)


def test_prediction_follows_a_constant_velocity_over_any_gap():
    mean, cov = kalman.initiate(np.array([[100.0, 300.0, 40.0, 100.0]]))
    velocity = np.array([30.0, -10.0, 0.0, 0.0])       # pixels per second
    for t in np.arange(1, 31) * 0.1:
        kalman.predict(mean, cov, 0.1)
        kalman.update(mean, cov, np.array([0]), np.array([[100.0, 300.0, 40.0, 100.0]]) + t * velocity)
    assert mean[0, 4:] == pytest.approx(velocity, abs=1.0)
    before = cov[0, :, 0].copy()
    kalman.predict(mean, cov, 0.7)                      # a gap of 7 frames: 3.0 s -> 3.7 s
    assert mean[0, :4] == pytest.approx([100.0 + 3.7 * 30.0, 300.0 - 3.7 * 10.0, 40.0, 100.0], abs=1.5)
    assert (cov[0, :, 0] > before).all()                # less certain after the gap
    box = kalman.boxes_xyxy(mean)[0]
    assert box == pytest.approx([211.0 - 20.0, 263.0 - 50.0, 211.0 + 20.0, 263.0 + 50.0], abs=2.0)


def test_zero_step_changes_nothing_and_gate_grows_with_distance():
    mean, cov = kalman.initiate(np.array([[100.0, 300.0, 40.0, 100.0]]))
    m0, c0 = mean.copy(), cov.copy()
    kalman.predict(mean, cov, 0.0)
    assert np.array_equal(mean, m0) and np.array_equal(cov, c0)
    d2 = kalman.gate_distances(mean, cov, np.array([[100.0, 300.0, 40.0, 100.0], [110.0, 300.0, 40.0, 100.0],
                                                    [200.0, 300.0, 40.0, 100.0]]))
    assert d2[0, 0] == 0.0 and 0.0 < d2[0, 1] < kalman.CHI2_95_4DOF < d2[0, 2]


def test_uncertainty_grows_while_a_track_goes_undetected():
    mean, cov = kalman.initiate(np.array([[100.0, 300.0, 40.0, 100.0]]))
    start = kalman.log_uncertainty(mean, cov)[0]
    assert start > 0.0
    history = []
    for _ in range(5):
        kalman.predict(mean, cov, 0.2)
        history.append(kalman.log_uncertainty(mean, cov)[0])
    assert history == sorted(history) and history[0] > start
    kalman.update(mean, cov, np.array([0]), mean[:, :4].copy())
    assert kalman.log_uncertainty(mean, cov)[0] < history[-1]
