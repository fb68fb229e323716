"""``trt-perception detect`` end to end: video, image folder and image inputs; JSON schema; errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from trt_perception.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
FRAMES = sorted((ROOT / "test" / "data").glob("vtest_*.jpg"))


def _detect(out: Path, source: Path, *extra: str) -> int:
    return main(["detect", "--config", str(MODEL_YAML), "--input", str(source), "--json", str(out),
                 "--backend", "onnxruntime", "--threads", "1", *extra])


def _check_schema(frames: dict, width: int, height: int) -> int:
    count = 0
    for entry in frames.values():
        assert set(entry) == {"detections"}
        for det in entry["detections"]:
            assert set(det) == {"label", "class_id", "score", "box_normalized", "box_pixels"}
            assert det["label"] == "pedestrian" and det["class_id"] == 1
            assert 0.5 < det["score"] <= 1.0
            xmin, ymin, xmax, ymax = det["box_pixels"]
            assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
            assert det["box_normalized"] == pytest.approx([ymin / height, xmin / width,
                                                           ymax / height, xmax / width], abs=1e-5)
            count += 1
    return count


def test_video_every_n(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for i in range(7):
        writer.write(cv2.imread(str(FRAMES[i % len(FRAMES)])))
    writer.release()
    out = tmp_path / "out" / "detections.json"
    assert _detect(out, video, "--every", "3") == 0
    frames = json.loads(out.read_text())["frames"]
    assert list(frames) == ["0", "3", "6"]
    assert _check_schema(frames, 768, 576) >= 6           # >= 2 people in each of these frames
    scores = [d["score"] for d in frames["3"]["detections"]]
    assert scores == sorted(scores, reverse=True)


def test_image_folder_indices_are_sorted_positions(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(FRAMES):                    # names sort as b0.jpg, b1.jpg, ...
        shutil.copy(frame, folder / f"b{i}.jpg")
    blank = folder / "a_blank.png"                        # sorts first: index 0, nobody in it
    cv2.imwrite(str(blank), cv2.imread(str(FRAMES[0])) * 0)
    out = tmp_path / "folder.json"
    assert _detect(out, folder, "--every", "2") == 0
    frames = json.loads(out.read_text())["frames"]
    assert list(frames) == ["0", "2", "4"]
    assert frames["0"]["detections"] == []                # listed even when empty
    assert _check_schema(frames, 768, 576) >= 5


def test_single_image_and_score_threshold(tmp_path: Path) -> None:
    default, strict = tmp_path / "default.json", tmp_path / "strict.json"
    assert _detect(default, FRAMES[2]) == 0
    assert _detect(strict, FRAMES[2], "--score-threshold", "0.9") == 0
    loose = json.loads(default.read_text())["frames"]["0"]["detections"]
    tight = json.loads(strict.read_text())["frames"]["0"]["detections"]
    assert len(loose) > len(tight) >= 1
    assert all(d["score"] > 0.9 for d in tight)


@pytest.mark.parametrize("override, message", [
    ({"--input": "missing.avi"}, "does not exist"),
    ({"--score-threshold": "1.5"}, "score_threshold must be a number"),
    ({"--every": "0"}, "--every must be >= 1"),
])
def test_errors_are_reported_and_nothing_is_written(tmp_path: Path, capsys, override: dict,
                                                    message: str) -> None:
    out = tmp_path / "never.json"
    options = {"--config": str(MODEL_YAML), "--input": str(FRAMES[0]), "--json": str(out),
               "--backend": "onnxruntime", **override}
    assert main(["detect", *[part for item in options.items() for part in item]]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()
