"""``trt-perception detect --track``: track ids and stamps in the JSON, on real street frames."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from trt_perception.cli import main
from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.draw import draw_detections

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
SAMPLE = ROOT / "data" / "vtest_sample.mp4"


def clip(path: Path, frames: int, fps: float) -> Path:
    """The first ``frames`` frames of the sample video, as an MJPG AVI at ``fps``."""
    capture = cv2.VideoCapture(str(SAMPLE))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (768, 576))
    for _ in range(frames):
        ok, frame = capture.read()
        assert ok
        writer.write(frame)
    writer.release()
    capture.release()
    return path


def detect(out: Path, source: Path, *extra: str) -> dict:
    assert main(["detect", "--config", str(MODEL_YAML), "--input", str(source), "--json", str(out),
                 "--backend", "onnxruntime", "--threads", "1", *extra]) == 0
    return json.loads(out.read_text())["frames"]


def test_track_ids_and_stamps_in_the_json(tmp_path: Path) -> None:
    # the sample holds every 3rd frame of a 10 frames/s video: --fps gives the stamps real time
    frames = detect(tmp_path / "t.json", clip(tmp_path / "clip.avi", 8, 10.0), "--track", "--fps", "3.3333333")
    assert list(frames) == [str(i) for i in range(8)]
    assert [entry["stamp"] for entry in frames.values()] == pytest.approx([0.3 * i for i in range(8)])
    lengths: Counter = Counter()
    for index, entry in enumerate(frames.values()):
        ids = [d["id"] for d in entry["detections"]]
        if index < 2:
            assert ids == [""] * len(ids) and len(ids) >= 2    # confirmed on the third detection (min_hits 3)
        named = [i for i in ids if i]
        assert len(named) == len(set(named))           # one id per pedestrian in a frame
        lengths.update(named)
    assert lengths["1"] >= 5                           # the first pedestrian confirmed is followed on


def test_every_n_frames_are_gaps_in_time(tmp_path: Path) -> None:
    frames = detect(tmp_path / "e.json", clip(tmp_path / "clip.avi", 7, 10.0), "--track", "--every", "3")
    assert {k: v["stamp"] for k, v in frames.items()} == {"0": 0.0, "3": 0.3, "6": 0.6}
    plain = detect(tmp_path / "p.json", clip(tmp_path / "clip.avi", 1, 10.0))
    assert all("id" not in d for d in plain["0"]["detections"]) and "stamp" not in plain["0"]


def test_bad_fps_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["detect", "--config", str(MODEL_YAML), "--input", str(SAMPLE), "--json",
                 str(tmp_path / "x.json"), "--track", "--fps", "0"]) == 1
    assert "--fps must be > 0" in capsys.readouterr().err


def test_the_debug_image_shows_the_id() -> None:
    dets = Detections(np.array([[10, 30, 60, 90]], np.float32), np.array([0.8], np.float32),
                      np.array([1], np.int32), ["pedestrian"], ["42"])
    tracked = draw_detections(np.zeros((100, 200, 3), np.uint8), dets)
    untracked = draw_detections(np.zeros((100, 200, 3), np.uint8),
                                Detections(dets.boxes_xyxy, dets.scores, dets.class_ids, dets.labels))
    caption = (slice(0, 28), slice(10, 200))            # the text line above the box
    assert np.count_nonzero(tracked[caption]) > np.count_nonzero(untracked[caption]) > 0
