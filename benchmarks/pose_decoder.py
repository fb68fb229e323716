"""Speed and accuracy of the PAF pose decoder on synthesised trt_pose fields, side by side with trt_pose's parser.

Speed: :class:`PoseParser` alone (cmap/paf in, people in map cells out) on 56x56 fields (18 parts,
21 links, sigma 1.5 cells), 1, 5 and 20 freely placed people: the compiled decoder, the numpy
reference and trt_pose's own C++ parser (``../shared/reference/trt_pose_parse``, built here with its
``build.sh`` when that folder is present; skipped, and said so, when it is not) called in turn on the
same arrays, one thread, the order rotating every call, in ``--passes`` passes (1-minute load
average recorded before each). Accuracy: share of people recovered exactly, per scene type
(``synthetic.SCENE_TYPES``), by this decoder and by trt_pose's parser on the same scenes.
Run: ``.venv/bin/python benchmarks/pose_decoder.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Optional  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from trt_perception.core.decode.pose import COCO18, PoseParser  # noqa: E402
from trt_perception.core.io.atomic_write import atomic_write_text  # noqa: E402
from trt_perception.testing.pose_fields import SCENE_TYPES, expected_parts, random_scene, recovered  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "pose_decoder.md"
REFERENCE = HERE.parent.parent / "shared" / "reference" / "trt_pose_parse"
PEOPLE = (1, 5, 20)


def load_trt_pose(folder: Path) -> Optional[Any]:
    """trt_pose's parser (its ctypes wrapper over a library built by its build.sh), or None when the
    folder is absent.
    """
    if not (folder / "build.sh").exists():
        return None
    out = tempfile.mkdtemp(prefix="trtpose_")
    lib = subprocess.run(["bash", str(folder / "build.sh"), out], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    sys.path.insert(0, str(folder))
    from trtpose_ref import TrtPoseParser  # type: ignore[import-not-found]
    return TrtPoseParser(lib)


def as_found(people: np.ndarray) -> np.ndarray:
    """trt_pose's float[P, C, 2] (NaN: absent) as ``Poses.keypoints`` float[P, C, 3] (score 1 / 0)."""
    found = np.zeros(people.shape[:2] + (3,))
    found[:, :, :2] = people
    found[:, :, 2] = ~np.isnan(people[:, :, 0])
    return found


def time_decoders(decoders: dict[str, Callable[[np.ndarray, np.ndarray], Any]], num_people: int, runs: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Wall-clock seconds per call of each decoder, ``runs`` calls over 10 scenes (after a warm-up pass),
    the decoders called in turn on each scene, the first one rotating (it finds the maps out of cache).
    """
    scenes = [random_scene(rng, num_people) for _ in range(10)]
    for scene in scenes:
        for decode in decoders.values():
            decode(scene.cmap, scene.paf)
    names = list(decoders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        scene = scenes[i % len(scenes)]
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            start = time.perf_counter()
            decoders[name](scene.cmap, scene.paf)
            times[name].append(time.perf_counter() - start)
    return {name: np.array(t) for name, t in times.items()}


def accuracy(scene_type: str, scenes: int, seed: int, parser: PoseParser,
             trt_pose: Optional[Any]) -> tuple[int, float, float]:
    """(people counted, share recovered exactly by the decoder, by trt_pose (NaN without it))."""
    rng = np.random.default_rng(seed)
    ours = theirs = counted = 0
    for _ in range(scenes):
        scene = SCENE_TYPES[scene_type].sample(rng)
        use = expected_parts(scene.keypoints, COCO18).sum(axis=1) >= parser.params.min_parts
        ours += int(recovered(scene.keypoints, parser(scene.cmap, scene.paf).keypoints, COCO18)[use].sum())
        if trt_pose is not None:
            theirs += int(recovered(scene.keypoints, as_found(trt_pose(scene.cmap, scene.paf)), COCO18)[use].sum())
        counted += int(use.sum())
    return counted, ours / counted, theirs / counted if trt_pose is not None else float("nan")


SCENES_DOC = """\
Scenes (`trt_perception.testing.pose_fields`, `SCENE_TYPES` / `random_scene`, 56x56 maps):
people with human proportions (COCO 18 parts), height log-uniform in 12..44 cells unless the row
says otherwise, rotation N(0, 0.15 rad) (5 % of people: any angle), facing front / back / profile
(profile hides the far eye and ear), arm and leg angles with elbow and knee bend, half the people
with one ear hidden; parts outside the map not drawn. Each drawn part is missing (occluded: no peak,
no field on its limbs) with probability 0.05 unless the row says otherwise. cmap: Gaussian peaks,
sigma 1.5 cells unless the row says otherwise, height uniform in 0.6..1 per keypoint, maximum where
people overlap; paf: trt_pose's target, the unit vector along each limb weighted by
exp(-d^2 / w^2), w (the PAF line width) 1 cell unless the row says otherwise, magnitude uniform in
0.7..1 per limb, summed where limbs overlap; Gaussian noise sigma 0.02 (0.05 in the noise rows) on
every cell of both maps. Placement: *free*: body centres uniform over the map (people overlap,
cross each other and the borders); *separated*: the people's boxes (grown by 3 cells) do not
overlap; *crossing*: each person centred within a quarter of its height of one already placed
(bodies and limbs overlap; far harder than real crowds); *at the border*: centres within a quarter
height of an edge, so the border cuts most people.

Exact recovery, the same for both decoders: a person counts when at least 3 of its drawn parts are
connected through drawn links; the parts it must have are the largest such connected set. It is
recovered when one decoded person has each of these parts within 1.5 cells and no other part.
trt_pose's parser: its defaults (cmap_threshold 0.1, link_threshold 0.1, window 5, 7 samples);
it keeps people of any size, which can only help it here.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed calls per decoder and people count")
    parser.add_argument("--passes", type=int, default=3, help="timing passes")
    parser.add_argument("--scenes", type=int, default=40, help="scenes per accuracy row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="trt_pose's parser folder (reference/trt_pose_parse)")
    parser.add_argument("--note", default="", help="a paragraph for the results file (conditions of the run)")
    args = parser.parse_args()

    trt_pose = load_trt_pose(args.reference)
    compiled, reference = PoseParser(), PoseParser(compiled=False)
    decoders: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {"compiled": compiled}
    decoders["numpy"] = reference
    if trt_pose is not None:
        decoders["trt_pose"] = trt_pose.parse
    loads, times = [], {people: [] for people in PEOPLE}
    for _ in tqdm(range(args.passes), desc="timing passes", leave=False):
        loads.append(os.getloadavg()[0])
        rng = np.random.default_rng(args.seed)  # the same scenes in every pass
        for people in PEOPLE:
            times[people].append({k: v * 1e3 for k, v in time_decoders(decoders, people, args.runs, rng).items()})
    rows = [(name, *accuracy(name, args.scenes, args.seed + 1, compiled, trt_pose))
            for name in tqdm(SCENE_TYPES, desc="accuracy", leave=False)]

    lines = ["# Pose decoder: speed and accuracy, against trt_pose's parser", "",
             f"`benchmarks/pose_decoder.py --runs {args.runs} --passes {args.passes} --scenes {args.scenes} "
             f"--seed {args.seed}` on {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
             f"Python {platform.python_version()}, numpy {np.__version__}, "
             f"compiled path: {'numba' if compiled.compiled else 'UNAVAILABLE (numpy fallback)'}, one thread.", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["## Speed (decoder alone, 56x56, 18 parts, 21 links, freely placed people)", "",
              f"{args.passes} passes of {args.runs} calls per decoder and people count over 10 scenes, the "
              f"decoders called in turn on the same arrays (the first one rotating); 1-minute load average "
              f"before each pass: {', '.join(f'{load:.2f}' for load in loads)} (shared machine: compare the "
              f"ratios, measured under the same load, not the absolute times). Median ms per pass.", ""]
    if trt_pose is None:
        lines += [f"trt_pose's parser not found at {args.reference}: the comparison is skipped.", ""]
    names = list(decoders)
    lines += ["| people | " + " | ".join(f"{n} ms" for n in names)
              + (" | compiled / trt_pose | numpy / trt_pose |" if trt_pose is not None else " |"),
              "| ---: |" + " ---: |" * (len(names) + (2 if trt_pose is not None else 0))]
    for people, passes in times.items():
        medians = {n: [float(np.median(p[n])) for p in passes] for n in names}
        cells = [" / ".join(f"{m:.3f}" for m in medians[n]) for n in names]
        if trt_pose is not None:
            for n in ("compiled", "numpy"):
                cells.append(" / ".join(f"{a / b:.2f}" for a, b in zip(medians[n], medians["trt_pose"])))
        lines.append(f"| {people} | " + " | ".join(cells) + " |")
    lines += ["", "## Accuracy (share of people recovered exactly, same scenes for both)", "",
              "| scene type | people counted | this decoder | trt_pose's parser | difference |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, counted, ours, theirs in rows:
        lines.append(f"| {name} | {counted} | {ours:.1%} | {theirs:.1%} | {100 * (ours - theirs):+.1f} |")
    lines += ["", f"Accuracy scenes: seed {args.seed + 1} (the timing scenes use seed {args.seed}).", "",
              SCENES_DOC]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_text(RESULTS, text)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
