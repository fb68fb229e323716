"""Constant-velocity Kalman filter of image boxes, for N tracks at once.

State per track (8 values, image pixels and pixels per second)::

    mean: float64[N, 8] = (cx, cy, w, h, vcx, vcy, vw, vh)

Measurement: the detected box (cx, cy, w, h). With this motion model the four axes never mix
(transition, measurement, process and measurement noise are all per axis), so the 8 x 8
covariance is four independent 2 x 2 blocks (position, velocity of one axis); it is kept as

    cov: float64[N, 4, 3] = (var position, cov position-velocity, var velocity) per axis

which is the same filter as the textbook 8-dimensional one (test_tracking_kalman checks it
against a dense implementation) at a fraction of the cost: every step is a few vectorized numpy
operations over all tracks, no per-track Python and no 8 x 8 matrix products.

Noise scales with the box height h (a near pedestrian is tall and moves many pixels), as in
ByteTrack, but in seconds instead of frames, so a frame gap of any length is predicted correctly:

* measurement: standard deviation ``MEASUREMENT_STD * h`` on each of cx, cy, w, h (box jitter);
* process: piecewise-constant white acceleration over dt, standard deviation
  ``ACCELERATION_STD * h`` per s^2 for the centre, ``SIZE_ACCELERATION_STD * h`` for the size;
* a new track starts at the measured box with velocity 0 +- ``INITIAL_VELOCITY_STD * h`` per s.
"""

from __future__ import annotations

import numpy as np

#: box jitter of the detector, in box heights (0.05, ByteTrack's value, gated out too many true
#: matches of the bundled SSDLite on vtest.avi: 113 ids against 69 at 0.1; benchmarks/tracking_vtest.py)
MEASUREMENT_STD = 0.1
#: centre acceleration of a walking pedestrian, in box heights per s^2 (1 m/s^2 for 1.7 m)
ACCELERATION_STD = 0.6
#: width/height change (walking towards the camera), in box heights per s^2
SIZE_ACCELERATION_STD = 0.15
#: velocity of a new track (centre; size a quarter of it), in box heights per s
INITIAL_VELOCITY_STD = 1.0
#: chi-square 0.95 quantile for 4 degrees of freedom: the motion gate of :func:`gate_distances`
CHI2_95_4DOF = 9.4877

#: process acceleration standard deviation per measured axis (cx, cy, w, h), in box heights per s^2
AXIS_ACCEL = np.array([ACCELERATION_STD, ACCELERATION_STD, SIZE_ACCELERATION_STD, SIZE_ACCELERATION_STD])
#: velocity standard deviation of a new track per axis, in box heights per s
AXIS_INIT_V = np.array([1.0, 1.0, 0.25, 0.25]) * INITIAL_VELOCITY_STD
#: pixels: widths/heights are taken as at least this
MIN_SIZE = 1.0


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """float[K, 4] (xmin, ymin, xmax, ymax) -> float64[K, 4] (cx, cy, w, h)."""
    boxes = np.asarray(boxes, np.float64)
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2.0, boxes[:, 2:] - boxes[:, :2]], axis=1)


def boxes_xyxy(mean: np.ndarray) -> np.ndarray:
    """The boxes of states ``mean`` float[N, 8] as float64[N, 4] xyxy (sizes at least 1 pixel)."""
    half = np.maximum(mean[:, 2:4], MIN_SIZE) / 2.0
    return np.concatenate([mean[:, :2] - half, mean[:, :2] + half], axis=1)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States of new tracks at measured boxes float[K, 4] (cx, cy, w, h): (mean[K, 8], cov[K, 4, 3])."""
    z = np.asarray(measurements, np.float64)
    h = np.maximum(z[:, 3:4], MIN_SIZE)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    cov = np.zeros((len(z), 4, 3))
    cov[:, :, 0] = (2.0 * MEASUREMENT_STD * h) ** 2
    cov[:, :, 2] = (AXIS_INIT_V * h) ** 2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, dt: float) -> None:
    """Advance states by ``dt`` seconds (>= 0), in place."""
    if dt <= 0.0 or len(mean) == 0:
        return
    q = (AXIS_ACCEL * np.maximum(mean[:, 3:4], MIN_SIZE)) ** 2          # [N, 4] accel variance
    mean[:, :4] += dt * mean[:, 4:]
    p_pp, p_pv, p_vv = cov[:, :, 0], cov[:, :, 1], cov[:, :, 2]
    p_pp += dt * (2.0 * p_pv + dt * p_vv) + q * (dt ** 4 / 4.0)
    p_pv += dt * p_vv + q * (dt ** 3 / 2.0)
    p_vv += q * (dt * dt)


def innovation(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted measurement float64[N, 4] and its variance per axis float64[N, 4] (S)."""
    r = (MEASUREMENT_STD * np.maximum(mean[:, 3:4], MIN_SIZE)) ** 2
    return mean[:, :4], cov[:, :, 0] + r


def gate_distances(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances float64[N, K] of measurements float[K, 4] (cx, cy, w, h) from
    the predicted measurements; chi-square with 4 degrees of freedom (see ``CHI2_95_4DOF``).
    """
    predicted, s = innovation(mean, cov)
    diff = np.asarray(measurements, np.float64)[None, :, :] - predicted[:, None, :]
    diff *= diff
    diff /= s[:, None, :]
    distances: np.ndarray = diff.sum(axis=2)
    return distances


def log_uncertainty(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """float64[N]: ln det S - ln det R, how much less certain each predicted measurement is than one
    measurement (0 for a state known exactly; grows while a track goes undetected). Added to
    :func:`gate_distances` it is the Gaussian negative log-likelihood up to a constant.
    """
    predicted, s = innovation(mean, cov)
    r = (MEASUREMENT_STD * np.maximum(predicted[:, 3:4], MIN_SIZE)) ** 2
    uncertainty: np.ndarray = np.log(s / r).sum(axis=1)
    return uncertainty


def update(mean: np.ndarray, cov: np.ndarray, rows: np.ndarray, measurements: np.ndarray) -> None:
    """Correct the states ``rows`` (int[M]) with their measured boxes float[M, 4] (cx, cy, w, h),
    in place.
    """
    if len(rows) == 0:
        return
    m, c = mean[rows], cov[rows]
    predicted, s = innovation(m, c)
    gain_p, gain_v = c[:, :, 0] / s, c[:, :, 1] / s                       # Kalman gain, per axis
    residual = np.asarray(measurements, np.float64) - predicted
    m[:, :4] += gain_p * residual
    m[:, 4:] += gain_v * residual
    c[:, :, 2] -= gain_v * c[:, :, 1]
    c[:, :, 1] *= 1.0 - gain_p
    c[:, :, 0] *= 1.0 - gain_p
    mean[rows], cov[rows] = m, c
