"""Identity accuracy of the tracker on synthetic street scenes with known identities.

Scenes (:func:`simulate`): a 1280x720 camera at 15 frames/s, pedestrians entering from the sides
and walking across at 0.8-1.8 m/s (pixel speed from their box height for a 1.7 m person) with
random accelerations and slow approach/retreat, crossing each other at different depths. Their
detections have the faults of a real detector, set per difficulty level: box jitter (Gaussian, per
edge, a fraction of the box height), missed detections (independent), occlusions (events of a
fixed number of frames, a rate per person), people hidden behind a nearer one (covered > 60 %:
missed; 30-60 %: detected with a low score 0.3-0.5, what ByteTrack's second stage is for), false
positives (random boxes, scores 0.3-0.8), dropped frames (never reach the tracker: a stamp gap).

Scoring: motmetrics (MOTA, IDF1, ID switches), IoU >= 0.5, over the frames the tracker received;
the hypotheses are the published detections with an id. Two ground truths:

* ``visible``: every person in view (at least half of the box inside the image), also when the
  detector missed or an occlusion hid them: what a consumer of the ids sees, the detector's misses
  included (the tracker publishes detections, never a predicted box for a missed person);
* ``detected``: the people the simulated detector reported in that frame: the tracker's own share
  of the errors (switches, fragments, frames before confirmation).

ID switches per 100 track-frames = switches / ground-truth object-frames * 100.
Run: ``.venv/bin/python benchmarks/tracking_eval.py`` (needs motmetrics: requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from trt_perception.core.decode.ssd.detections import Detections
from trt_perception.core.io.atomic_write import atomic_write_text
from trt_perception.core.tracking import Tracker, TrackerParams

warnings.filterwarnings("ignore", category=FutureWarning)       # motmetrics 1.4 on pandas 3
import motmetrics as mm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tracking"
WIDTH, HEIGHT, FPS = 1280, 720, 15.0
TARGET_IDF1, TARGET_SWITCHES = 0.90, 1.0


@dataclass(frozen=True)
class Level:
    """A difficulty level of :func:`simulate`."""

    name: str
    people: int               #: people in view on average
    miss_rate: float          #: chance a visible person is not detected in a frame
    occlusion_frames: int     #: length of an occlusion event (frames)
    occlusion_rate: float     #: occlusion events per person per second
    fp_per_frame: float       #: false positives per frame (Poisson mean)
    jitter: float             #: box edge noise, standard deviation in box heights
    drop_rate: float          #: chance a frame is dropped before the tracker


LEVELS = (
    Level("easy", 8, 0.02, 0, 0.0, 0.1, 0.02, 0.0),
    Level("target", 10, 0.10, 2, 0.2, 0.5, 0.04, 0.05),
    Level("hard", 12, 0.20, 5, 0.3, 1.0, 0.06, 0.10),
    Level("crowded", 25, 0.10, 2, 0.2, 0.5, 0.04, 0.05),
)


@dataclass
class Frame:
    """One frame: stamp, ground truth (ids int[G], boxes float[G, 4] xyxy), which of them were
    detected (bool[G]), the detector's output.
    """

    stamp_ns: int
    gt_ids: np.ndarray
    gt_boxes: np.ndarray
    detected: np.ndarray
    dets: Detections
    dropped: bool


def _person(rng: np.random.Generator, entering: bool) -> list[float]:
    """[x centre, foot y, height, vx px/s, dh/dt px/s] of a new person."""
    h = rng.uniform(90.0, 260.0)
    speed = rng.uniform(0.8, 1.8) * h / 1.7 * rng.choice([-1.0, 1.0])
    if entering:
        x = -0.2 * h if speed > 0 else WIDTH + 0.2 * h
    else:
        x = rng.uniform(0.0, WIDTH)
    return [x, 250.0 + 1.6 * h, h, speed, rng.uniform(-0.05, 0.05) * h]


def _covered(boxes: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Share of each box float[G] covered by the union-free sum of nearer (taller) boxes, capped at 1."""
    x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    nearer = heights[None, :] > heights[:, None]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    share: np.ndarray = np.minimum((inter * nearer).sum(axis=1) / area, 1.0)
    return share


def simulate(level: Level, seed: int, frames: int) -> list[Frame]:
    """``frames`` frames of one scene of ``level`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    people: dict[int, list[float]] = {}
    occluded_until: dict[int, int] = {}
    next_id = 0
    for _ in range(level.people):
        people[next_id] = _person(rng, entering=False)
        next_id += 1
    dwell = WIDTH / (1.3 * 175.0 / 1.7)                       # seconds a typical person stays in view
    out = []
    dt = 1.0 / FPS
    for f in range(frames):
        if rng.random() < level.people / dwell * dt:
            people[next_id] = _person(rng, entering=True)
            next_id += 1
        ids, boxes = [], []
        for pid, (x, foot, h, vx, vh) in people.items():
            w = 0.41 * h
            box = np.array([x - w / 2, foot - h, x + w / 2, foot])
            inside = (min(box[2], WIDTH) - max(box[0], 0.0)) / w
            if inside >= 0.5:
                ids.append(pid)
                boxes.append(box)
        gt_ids = np.array(ids, np.int64)
        gt_boxes = np.array(boxes, np.float64).reshape(-1, 4)
        gt_boxes[:, 0::2] = np.clip(gt_boxes[:, 0::2], 0, WIDTH)           # what a camera sees
        heights = gt_boxes[:, 3] - gt_boxes[:, 1]
        covered = _covered(gt_boxes, heights) if len(ids) else np.zeros(0)
        for pid in ids:
            if level.occlusion_frames and rng.random() < level.occlusion_rate * dt and occluded_until.get(pid, -1) < f:
                occluded_until[pid] = f + level.occlusion_frames - 1
        hidden = np.array([occluded_until.get(pid, -1) >= f for pid in ids], bool)
        detected = ~hidden & (covered <= 0.6) & (rng.random(len(ids)) >= level.miss_rate)
        scores = np.where(covered > 0.3, rng.uniform(0.3, 0.5, len(ids)), rng.uniform(0.6, 0.98, len(ids)))
        noisy = gt_boxes + rng.normal(0.0, level.jitter, gt_boxes.shape) * heights[:, None]
        fp_count = rng.poisson(level.fp_per_frame)
        fp_h = rng.uniform(60.0, 260.0, fp_count)
        fp_x, fp_y = rng.uniform(0, WIDTH, fp_count), rng.uniform(200, HEIGHT, fp_count)
        fp_boxes = np.stack([fp_x - 0.2 * fp_h, fp_y - fp_h, fp_x + 0.2 * fp_h, fp_y], axis=1)
        det_boxes = np.concatenate([noisy[detected], fp_boxes])
        det_boxes[:, 0::2] = np.clip(det_boxes[:, 0::2], 0, WIDTH)
        det_boxes[:, 1::2] = np.clip(det_boxes[:, 1::2], 0, HEIGHT)
        det_scores = np.concatenate([scores[detected], rng.uniform(0.3, 0.8, fp_count)])
        valid = (det_boxes[:, 2] - det_boxes[:, 0] > 2) & (det_boxes[:, 3] - det_boxes[:, 1] > 2)
        order = np.argsort(-det_scores[valid], kind="stable")
        boxes_v, scores_v = det_boxes[valid][order], det_scores[valid][order]
        dets = Detections(boxes_v.astype(np.float32), scores_v.astype(np.float32),
                          np.ones(len(order), np.int32), ["pedestrian"] * len(order))
        out.append(Frame(int(round(f * dt * 1e9)), gt_ids, gt_boxes, detected, dets,
                         bool(rng.random() < level.drop_rate)))
        for pid in list(people):                              # move, and leave when out of view
            x, foot, h, vx, vh = people[pid]
            vx += rng.normal(0.0, 0.3 * h / 1.7) * dt         # 0.3 m/s^2 random acceleration
            h = max(h + vh * dt, 40.0)
            people[pid] = [x + vx * dt, 250.0 + 1.6 * h, h, vx, vh]
            if x < -h or x > WIDTH + h:
                del people[pid]
    return out


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _distances(gt: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """1 - IoU of xyxy boxes, NaN below IoU 0.5 (motmetrics' boxiou; its iou_matrix calls
    np.asfarray, gone from numpy 2).
    """
    if len(gt) == 0 or len(hyp) == 0:
        return np.empty((len(gt), len(hyp)))
    iou = mm.distances.boxiou(_xywh(gt)[:, None, :], _xywh(hyp)[None, :, :])
    return np.where(iou >= 0.5, 1.0 - iou, np.nan)


def evaluate(level: Level, seeds: list[int], frames: int, params: TrackerParams) -> dict[str, Any]:
    """MOT metrics of ``level`` over one scene per seed, both ground truths (module docstring)."""
    accumulators: dict[str, list[mm.MOTAccumulator]] = {"visible": [], "detected": []}
    for seed in seeds:
        tracker = Tracker(params)
        accs = {key: mm.MOTAccumulator(auto_id=True) for key in accumulators}
        for frame in simulate(level, seed, frames):
            if frame.dropped:
                continue
            out = tracker.update(frame.dets, frame.stamp_ns)
            assert out.ids is not None
            with_id = [k for k, i in enumerate(out.ids) if i]
            hyp_ids = [int(out.ids[k]) for k in with_id]
            hyp_boxes = out.boxes_xyxy[with_id].astype(np.float64)
            for key, mask in (("visible", np.ones(len(frame.gt_ids), bool)), ("detected", frame.detected)):
                accs[key].update(frame.gt_ids[mask].tolist(), hyp_ids, _distances(frame.gt_boxes[mask], hyp_boxes))
        for key in accumulators:
            accumulators[key].append(accs[key])
    host = mm.metrics.create()
    names = ["mota", "idf1", "num_switches", "num_objects", "num_false_positives", "num_misses",
             "num_unique_objects", "mostly_tracked", "num_fragmentations"]
    result: dict[str, Any] = {}
    for key, accs_ in accumulators.items():
        summary = host.compute_many(accs_, metrics=names, generate_overall=True).loc["OVERALL"]
        values = {name: float(summary[name]) for name in names}
        values["switches_per_100"] = 100.0 * values["num_switches"] / max(values["num_objects"], 1.0)
        result[key] = values
    return result


def _row(level: Level, variant: str, result: dict[str, Any]) -> str:
    v, d = result["visible"], result["detected"]
    return (f"| {level.name} | {variant} | {d['idf1']:.3f} | {d['mota']:.3f} | {int(d['num_switches'])} | "
            f"{d['switches_per_100']:.2f} | {v['idf1']:.3f} | {v['mota']:.3f} | {int(v['num_objects'])} | "
            f"{int(v['num_unique_objects'])} | {int(v['num_fragmentations'])} |")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=5, help="scenes (seeds) per level")
    parser.add_argument("--frames", type=int, default=600, help="frames per scene (15 frames/s)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results path without suffix")
    args = parser.parse_args(argv)
    seeds = list(range(args.scenes))
    variants = {"default": TrackerParams(), "no motion gate": TrackerParams(motion_gate=False),
                "min_hits 2": TrackerParams(min_hits=2), "max_lost 1 s": TrackerParams(max_lost=1.0)}
    runs = [(level, name, params) for level in LEVELS for name, params in variants.items()
            if name == "default" or level.name == "target"]
    results = []
    for level, name, params in tqdm(runs, unit="run"):
        results.append((level, name, evaluate(level, seeds, args.frames, params)))
    target = next(r for lv, n, r in results if lv.name == "target" and n == "default")
    met = target["detected"]["idf1"] >= TARGET_IDF1 and target["detected"]["switches_per_100"] < TARGET_SWITCHES
    lines = [
        "# Tracker: identities on synthetic scenes",
        "",
        f"`benchmarks/tracking_eval.py --scenes {args.scenes} --frames {args.frames}` "
        f"({args.scenes} scenes x {args.frames} frames at {FPS:g} frames/s per level; motmetrics "
        f"{mm.__version__}, Python {platform.python_version()}). Scenes and the two ground truths: "
        "the script's docstring. IoU >= 0.5 between a ground-truth box and a published box with an id.",
        "",
        "Levels (miss = independent missed detections, occl. = occlusion events of N frames at a rate "
        "per person per second, plus people hidden behind nearer ones; FP per frame; jitter in box "
        "heights; dropped frames):",
        "",
        "| level | people in view | miss | occl. frames | occl. rate /s | FP/frame | jitter | dropped |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {lv.name} | {lv.people} | {lv.miss_rate:.0%} | {lv.occlusion_frames} | {lv.occlusion_rate} | "
          f"{lv.fp_per_frame} | {lv.jitter} | {lv.drop_rate:.0%} |" for lv in LEVELS],
        "",
        "| level | tracker | IDF1 (detected) | MOTA (detected) | ID switches | switches / 100 track-frames "
        "| IDF1 (visible) | MOTA (visible) | GT object-frames | GT people | fragmentations |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[_row(lv, n, r) for lv, n, r in results],
        "",
        f"Target (issue): IDF1 >= {TARGET_IDF1} and < {TARGET_SWITCHES:g} ID switch per 100 track-frames at "
        "10 % missed detections and 2-frame occlusions (level `target`, default tracker): "
        f"IDF1 {target['detected']['idf1']:.3f} / {target['visible']['idf1']:.3f} (detected / visible ground "
        f"truth), {target['detected']['switches_per_100']:.2f} switches per 100 track-frames: "
        f"{'met' if met else 'NOT met'} on the detected ground truth.",
        "",
        "The visible ground truth counts every frame the detector missed (10 % at `target`, plus "
        "occlusions) against the published ids: the tracker publishes detections only, so that share "
        "cannot be recovered by tracking; IDF1 on it is bounded by the detector's recall.",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output.with_suffix(".md"), "\n".join(lines))
    payload = {"scenes": args.scenes, "frames": args.frames, "fps": FPS,
               "levels": [dataclasses.asdict(lv) for lv in LEVELS],
               "results": [{"level": lv.name, "tracker": n, **r} for lv, n, r in results]}
    atomic_write_text(args.output.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
