"""Rate benchmark maths: per-camera trial statistics and jitter, the peak-rate search."""

from pathlib import Path

import pytest

from trt_perception.cli import main
from trt_perception.tools.rate_benchmark import CameraTrial, TrialStats, find_peak, format_trials, trial_stats
from trt_perception.tools.replay_report import OutputResult, ReplayedFrame

MS = 1_000_000
DET_A, DET_B, LAT_A = "/a/detections", "/b/detections", "/a/detector/latency"

def frame(topic, index, published_ms, answered_ms=None, output=DET_A, also_latency=True):
    f = ReplayedFrame(topic, 0, index, 10**18 + index, "cam", published_ms * MS,
                      (output, LAT_A) if also_latency else (output,))
    if answered_ms is not None:
        f.results[output] = OutputResult(answered_ms * MS, objects=1)
    return f

def test_trial_counts_round_trip_and_jitter_per_camera():
    # camera a at 10 Hz: answers 30 ms after publishing, one 20 ms late; the 5th unanswered
    a = [frame("/a/image_raw", i, 100 * i, 100 * i + (50 if i == 2 else 30)) for i in range(4)]
    a.append(frame("/a/image_raw", 4, 400))
    b = [frame("/b/image_raw", i, 100 * i, 100 * i + 40, output=DET_B, also_latency=False) for i in range(5)]
    stats = trial_stats(a + b, [DET_A, DET_B], rate_hz=10, wall_s=0.6, cpu_percent=50.0, rss_mib=300.0)
    cam_a, cam_b = stats.cameras["/a/image_raw"], stats.cameras["/b/image_raw"]
    assert (cam_a.published, cam_a.answered, cam_a.unanswered) == (5, 4, 0.2)
    assert cam_a.round_trip_ms["p50"] == pytest.approx(30) and cam_a.round_trip_ms["max"] == pytest.approx(50)
    # answers at 30, 130, 250, 330 ms: intervals 100, 120, 80 -> deviations 0, 20, 20
    assert cam_a.jitter_max_ms == pytest.approx(20)
    assert cam_a.jitter_std_ms == pytest.approx(16.3299, abs=1e-3)   # std of 100, 120, 80
    assert (cam_b.answered, cam_b.jitter_std_ms, cam_b.jitter_max_ms) == (5, pytest.approx(0), pytest.approx(0))
    assert stats.unanswered == 0.2 and not stats.passes(0.05) and stats.passes(0.2)
    table = format_trials([stats])
    assert "/a/image_raw" in table and "20.0" in table and "300.0" in table
    assert stats.as_dict()["cameras"]["/a/image_raw"]["unanswered"] == 0.2

def test_a_latency_message_alone_does_not_answer_a_frame():
    f = frame("/a/image_raw", 0, 0)
    f.results[LAT_A] = OutputResult(5 * MS, stages_ms={"inference": 1.0})
    stats = trial_stats([f], [DET_A], rate_hz=10, wall_s=1)
    assert stats.cameras["/a/image_raw"].answered == 0

def node_with_capacity(capacity_hz, log):
    """A trial of a node that answers everything up to capacity_hz and a shrinking share above."""
    def trial(rate):
        log.append(rate)
        answered = 100 if rate <= capacity_hz else int(100 * capacity_hz / rate)
        return TrialStats(rate, 1.0, {"/a/image_raw": CameraTrial(100, answered, {}, None, None)})
    return trial

def test_peak_search_bisects_to_the_capacity_with_repeats():
    log = []
    search = find_peak(node_with_capacity(23.0, log), 1, 64, steps=6, repeats=2)
    assert 23.0 - 63 / 2**6 <= search.peak_hz <= 23.0 * 1.05   # within the last step (5 % slack passes)
    assert log[0] == 64 and log[1] == 1 and log[2] == 1          # high fails once; low passes twice
    assert len(search.trials) == len(log) and search.as_dict()["peak_hz"] == search.peak_hz

def test_peak_search_ends_at_once_when_high_passes_or_low_fails():
    log = []
    assert find_peak(node_with_capacity(100, log), 1, 50, repeats=3).peak_hz == 50 and log == [50] * 3
    log = []
    assert find_peak(node_with_capacity(0.5, log), 1, 50).peak_hz is None and log == [50, 1]

@pytest.mark.parametrize("low, high, steps, repeats", [(0, 10, 3, 1), (5, 4, 3, 1), (1, 10, -1, 1), (1, 10, 3, 0)])
def test_bad_search_settings_are_refused(low, high, steps, repeats):
    with pytest.raises(ValueError):
        find_peak(node_with_capacity(5, []), low, high, steps, repeats)


@pytest.mark.parametrize("extra, message", [
    (["--rate-hz", "10,x"], "--rate-hz takes numbers"),
    (["--rate-hz", "0"], "rates > 0 Hz"),
    (["--find-peak", "--peak-range", "30,10"], "LOW <= HIGH"),
    (["--find-peak", "--repeats", "0"], "--repeats >= 1"),
    (["--rate-hz", "10", "--node-pid", "999999999"], "no such process"),
])
def test_bad_benchmark_options_are_refused_before_anything_starts(capsys, extra, message):
    bag = Path(__file__).resolve().parents[2] / "data" / "vtest_bag"
    assert main(["replay", "--bag", str(bag), *extra]) == 1
    assert message in capsys.readouterr().err
