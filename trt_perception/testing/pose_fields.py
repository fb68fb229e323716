"""Synthetic cmap / paf fields from known skeletons, for tests and benchmarks.

:func:`render_fields` draws trt_pose's training targets: on the confidence map of each part, a
Gaussian of ``sigma`` cells at every keypoint (maximum where people overlap); on the two PAF
channels of each link, the unit vector from part_a to part_b weighted by
``exp(-d^2 / paf_width^2)``, d the distance of the cell centre to the segment (summed where limbs
overlap, as trt_pose's ``generate_paf``). Amplitudes and additive Gaussian noise are optional.

:func:`random_scene` makes scenes of people with plausible proportions (COCO 18 parts): random
height, position, rotation, facing (front, back, profile), arm and leg angles, some parts missing
(occluded, hidden by the head in profile, or outside the map). :func:`recovered` scores a decoded
:class:`~trt_perception.core.decode.pose.Poses` against the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from trt_perception.core.decode.pose.topology import COCO18, Topology

# COCO 18 part ids (topology.COCO18 order)
(NOSE, L_EYE, R_EYE, L_EAR, R_EAR, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST,
 L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE, NECK) = range(18)

# Body proportions in units of the person's height (head top to ankles); neck at the origin,
# x towards the person's left when facing the camera (image right), y down.
_HEAD = {NOSE: (0.0, -0.10), L_EYE: (0.025, -0.12), R_EYE: (-0.025, -0.12),
         L_EAR: (0.055, -0.11), R_EAR: (-0.055, -0.11)}
_SHOULDER_X, _HIP_X, _HIP_Y = 0.11, 0.065, 0.30
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.15, 0.23, 0.23


def render_fields(keypoints: np.ndarray, topology: Topology, height: int, width: int,
                  sigma: float = 1.5, paf_width: float = 1.0, noise: float = 0.0,
                  part_gain: Optional[np.ndarray] = None, link_gain: Optional[np.ndarray] = None,
                  rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, np.ndarray]:
    """Cmap float32[C, H, W] and paf float32[2L, H, W] of people ``keypoints``.

    keypoints: float[O, C, 2] (x, y) in map cells, NaN for parts not drawn; a link is drawn when
    both its parts are. part_gain: float[O, C] peak heights (default 1); link_gain: float[O, L]
    PAF magnitudes (default 1). noise: standard deviation of Gaussian noise added to every cell
    (needs ``rng``).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, topology.num_parts, 2)
    people = keypoints.shape[0]
    part_gain = np.ones((people, topology.num_parts)) if part_gain is None else np.asarray(part_gain)
    link_gain = np.ones((people, topology.num_links)) if link_gain is None else np.asarray(link_gain)
    gx = np.arange(width) + 0.5
    gy = (np.arange(height) + 0.5)[:, None]

    cmap = np.zeros((topology.num_parts, height, width))
    person, part = np.nonzero(~np.isnan(keypoints[:, :, 0]))
    for o, c in zip(person.tolist(), part.tolist()):
        x, y = keypoints[o, c]
        blob = part_gain[o, c] * np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2.0 * sigma ** 2))
        np.maximum(cmap[c], blob, out=cmap[c])

    paf = np.zeros((2 * topology.num_links, height, width))
    a = keypoints[:, topology.links[:, 0]]  # [O, L, 2]
    b = keypoints[:, topology.links[:, 1]]
    person, link = np.nonzero(~np.isnan(a[:, :, 0] + b[:, :, 0]))
    for o, k in zip(person.tolist(), link.tolist()):
        (ax, ay), (bx, by) = a[o, k], b[o, k]
        length = np.hypot(bx - ax, by - ay)
        if length < 1e-6:
            continue
        ux, uy = (bx - ax) / length, (by - ay) / length
        along = (gx - ax) * ux + (gy - ay) * uy
        across = (gx - ax) * uy - (gy - ay) * ux
        beyond = np.where(along < 0.0, along, np.maximum(along - length, 0.0))
        weight = link_gain[o, k] * np.exp(-(beyond ** 2 + across ** 2) / paf_width ** 2)
        paf[2 * k] += weight * uy
        paf[2 * k + 1] += weight * ux

    if noise > 0.0:
        if rng is None:
            raise ValueError("noise > 0 needs an rng")
        cmap += rng.normal(0.0, noise, cmap.shape)
        paf += rng.normal(0.0, noise, paf.shape)
    return cmap.astype(np.float32), paf.astype(np.float32)


def random_person(rng: np.random.Generator, height: float, centre: tuple[float, float],
                  angle: float = 0.0) -> np.ndarray:
    """float64[18, 2]: COCO 18 keypoints (x, y) of a random pose, ``height`` cells tall (head top to
    ankles), the body's centre (mid-hip to neck midpoint) at ``centre``, rotated by ``angle`` rad.

    Parts hidden by the pose (the far eye and ear in profile, an ear half the time) are NaN.
    """
    pts = np.full((18, 2), np.nan)
    facing = rng.choice(["front", "back", "profile"], p=[0.55, 0.3, 0.15])
    for part, xy in _HEAD.items():
        pts[part] = xy
    pts[NOSE, 0] += rng.uniform(-0.02, 0.02)  # head turn
    pts[NECK] = (0.0, 0.0)
    pts[L_SHOULDER], pts[R_SHOULDER] = (_SHOULDER_X, 0.01), (-_SHOULDER_X, 0.01)
    pts[L_HIP], pts[R_HIP] = (_HIP_X, _HIP_Y), (-_HIP_X, _HIP_Y)
    for side, (shoulder, elbow, wrist, hip, knee, ankle) in ((1.0, (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP,
                                                                    L_KNEE, L_ANKLE)),
                                                            (-1.0, (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP,
                                                                    R_KNEE, R_ANKLE))):
        # angles from straight down, positive = away from the body's midline
        upper = rng.uniform(-0.3, 2.6)
        lower = upper + rng.uniform(-0.3, 2.3)
        pts[elbow] = pts[shoulder] + _UPPER_ARM * np.array([side * np.sin(upper), np.cos(upper)])
        pts[wrist] = pts[elbow] + _FOREARM * np.array([side * np.sin(lower), np.cos(lower)])
        thigh = rng.uniform(-0.25, 0.6)
        shin = thigh + rng.uniform(-0.9, 0.3)
        pts[knee] = pts[hip] + _THIGH * np.array([side * np.sin(thigh), np.cos(thigh)])
        pts[ankle] = pts[knee] + _SHIN * np.array([side * np.sin(shin), np.cos(shin)])
    if facing == "back":
        pts[:, 0] *= -1.0
        pts[[NOSE, L_EYE, R_EYE]] = np.nan
    elif facing == "profile":
        near = rng.choice([-1.0, 1.0])
        pts[:, 0] *= 0.35
        pts[[NOSE, L_EYE, R_EYE, L_EAR, R_EAR], 0] += near * 0.04
        pts[[R_EYE, R_EAR] if near > 0 else [L_EYE, L_EAR]] = np.nan
    if rng.random() < 0.5:
        pts[rng.choice([L_EAR, R_EAR])] = np.nan
    pts[:, 1] -= 0.5 * _HIP_Y
    cos, sin = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[cos, sin], [-sin, cos]]) * height
    placed: np.ndarray = pts + np.asarray(centre, dtype=np.float64)
    return placed


@dataclass(frozen=True)
class Scene:
    """keypoints: float64[O, 18, 2] of the parts drawn (NaN: missing or outside the map), in cells;
    cmap: float32[18, H, W]; paf: float32[42, H, W].
    """

    keypoints: np.ndarray
    cmap: np.ndarray
    paf: np.ndarray


def _box(points: np.ndarray) -> np.ndarray:
    return np.concatenate([np.nanmin(points, axis=0), np.nanmax(points, axis=0)])


PLACEMENTS = ("free", "separated", "crossing", "border")


def _centre(rng: np.random.Generator, placement: str, height: float, people: list[np.ndarray],
            map_h: int, map_w: int) -> tuple[float, float]:
    """A body centre for ``placement`` (see :func:`random_scene`)."""
    if placement == "crossing" and people:  # next to a placed person, bodies overlapping
        other = people[int(rng.integers(len(people)))]
        cx, cy = np.nanmean(other, axis=0)
        reach = 0.25 * height
        return float(cx + rng.uniform(-reach, reach)), float(cy + rng.uniform(-reach, reach))
    if placement == "border":  # centre within a quarter height of an edge, inside or outside
        side, reach = int(rng.integers(4)), 0.25 * height
        along = rng.uniform(0, map_w if side < 2 else map_h)
        across = rng.uniform(-reach, reach)
        return ((along, across), (along, map_h + across), (across, along), (map_w + across, along))[side]
    return float(rng.uniform(0, map_w)), float(rng.uniform(0, map_h))


def random_scene(rng: np.random.Generator, num_people: int, map_h: int = 56, map_w: int = 56,
                 placement: str = "free", height_range: tuple[float, float] = (12.0, 44.0),
                 sigma: float = 1.5, paf_width: float = 1.0, noise: float = 0.02,
                 missing: float = 0.05) -> Scene:
    """A scene of ``num_people`` random people (:func:`random_person`) on a ``map_w x map_h`` map.

    Heights are log-uniform in ``height_range`` cells, rotation N(0, 0.15) rad, or uniform for 5 %
    of people. ``placement``: ``free``: body centres uniform over the map (people may cross each
    other and the borders); ``separated``: the people's boxes, grown by 2 sigma, do not overlap;
    ``crossing``: every person after the first centred within a quarter of its height (along x and y)
    of a person already placed, so bodies and limbs overlap; ``border``: centres within a quarter
    of the height of an edge, inside or outside, so the border cuts most people. Each drawn part is
    missing with probability ``missing`` (occluded: no peak, no field on its links); peak heights are
    uniform in [0.6, 1], PAF magnitudes in [0.7, 1]; Gaussian noise of standard deviation ``noise``
    on every cell of both maps.
    """
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    people: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    margin = 2.0 * sigma
    for _ in range(100 * max(1, num_people)):
        if len(people) == num_people:
            break
        height = np.exp(rng.uniform(*np.log(height_range)))
        angle = rng.uniform(-np.pi, np.pi) if rng.random() < 0.05 else rng.normal(0.0, 0.15)
        pts = random_person(rng, height, _centre(rng, placement, height, people, map_h, map_w), angle)
        pts[rng.random(18) < missing] = np.nan
        outside = ~((pts[:, 0] >= 0) & (pts[:, 0] < map_w) & (pts[:, 1] >= 0) & (pts[:, 1] < map_h))
        pts[outside] = np.nan
        if np.count_nonzero(~np.isnan(pts[:, 0])) < 2:
            continue
        box = _box(pts) + np.array([-margin, -margin, margin, margin])
        if placement == "separated" and any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3]
                                            for o in boxes):
            continue
        people.append(pts)
        boxes.append(box)
    if len(people) < num_people:
        raise ValueError(f"could not place {num_people} {placement} people on a {map_w}x{map_h} map")
    keypoints = np.stack(people) if people else np.zeros((0, 18, 2))
    cmap, paf = render_fields(keypoints, COCO18, map_h, map_w, sigma, paf_width, noise,
                              part_gain=rng.uniform(0.6, 1.0, (num_people, 18)),
                              link_gain=rng.uniform(0.7, 1.0, (num_people, COCO18.num_links)), rng=rng)
    return Scene(keypoints, cmap, paf)


@dataclass(frozen=True)
class SceneType:
    """A family of :func:`random_scene` scenes: ``num_people`` and the other arguments (``options``)."""

    name: str
    num_people: int
    options: tuple[tuple[str, object], ...] = ()

    def sample(self, rng: np.random.Generator) -> Scene:
        """One scene of this type drawn with ``rng``."""
        return random_scene(rng, self.num_people, **dict(self.options))  # type: ignore[arg-type]


def _scene_types() -> tuple[SceneType, ...]:
    small, large = (8.0, 16.0), (30.0, 50.0)
    types = [SceneType("1 separated", 1, (("placement", "separated"),)),
             SceneType("5 separated", 5, (("placement", "separated"), ("height_range", (12.0, 30.0))))]
    for people in (5, 20):
        types += [SceneType(f"{people} free, none missing", people, (("missing", 0.0),)),
                  SceneType(f"{people} free", people)]
        types += [SceneType(f"{people} free, {m:.0%} missing", people, (("missing", m),)) for m in (0.1, 0.2)]
        types += [SceneType(f"{people} crossing", people, (("placement", "crossing"),)),
                  SceneType(f"{people} crossing, 10% missing", people, (("placement", "crossing"), ("missing", 0.1))),
                  SceneType(f"{people} at the border", people, (("placement", "border"),)),
                  SceneType(f"{people} small (8-16 cells)", people, (("height_range", small),)),
                  SceneType(f"{people} large (30-50 cells)", people, (("height_range", large),)),
                  SceneType(f"{people} noise 0.05", people, (("noise", 0.05),))]
        types += [SceneType(f"{people} sigma {s}, PAF width {w}", people, (("sigma", s), ("paf_width", w)))
                  for s, w in ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0), (2.0, 2.0))]
    return tuple(types)


#: the scene types of the accuracy benchmark (``benchmarks/pose_decoder.py``), by name
SCENE_TYPES = {scene_type.name: scene_type for scene_type in _scene_types()}


def expected_parts(keypoints: np.ndarray, topology: Topology,
                   usable: Optional[np.ndarray] = None) -> np.ndarray:
    """bool[O, C]: the parts a decoder can attach to each person: the largest set of ``usable``
    parts (default: the drawn ones) connected through links whose both parts are usable (a part
    cut off by missing neighbours cannot be attributed to anyone).
    """
    usable = ~np.isnan(keypoints[:, :, 0]) if usable is None else usable
    out = np.zeros_like(usable)
    for o in range(usable.shape[0]):
        label = list(range(topology.num_parts))

        def root(p: int) -> int:
            while label[p] != p:
                p = label[p]
            return p

        for a, b in topology.links.tolist():
            if usable[o, a] and usable[o, b]:
                label[root(a)] = root(b)
        roots = np.array([root(p) for p in range(topology.num_parts)])
        sizes = np.bincount(roots[usable[o]], minlength=topology.num_parts)
        out[o] = usable[o] & (roots == np.argmax(sizes))
    return out


def unresolvable_parts(keypoints: np.ndarray, topology: Topology, sigma: float = 1.5) -> np.ndarray:
    """bool[O, C]: drawn parts no decoder can be sure to attach: those with the same part of
    another person closer than 2 sigma (two equal Gaussians then merge into one peak), and those
    joined to the rest of their person only through such parts.
    """
    drawn = ~np.isnan(keypoints[:, :, 0])
    dist = np.hypot(keypoints[:, None, :, 0] - keypoints[None, :, :, 0],
                    keypoints[:, None, :, 1] - keypoints[None, :, :, 1])  # [O, O, C]
    people = np.arange(dist.shape[0])
    dist[people, people] = np.inf
    merged = np.any(dist < 2.0 * sigma, axis=1)
    visible: np.ndarray = (drawn & ~expected_parts(keypoints, topology, drawn & ~merged)
                           & expected_parts(keypoints, topology))
    return visible


def recovered(keypoints: np.ndarray, found: np.ndarray, topology: Topology, tol: float = 1.5,
              optional: Optional[np.ndarray] = None, optional_tol: float = 3.0) -> np.ndarray:
    """bool[O]: which true people some found person matches exactly.

    keypoints: float[O, C, 2] true (drawn) keypoints; found: float[D, C, 3] (x, y, score) with
    score 0 for absent parts (``Poses.keypoints``). A found person matches true person o when it
    has every part of ``expected_parts`` within ``tol`` cells of the truth and no other part,
    except parts marked in ``optional`` (bool[O, C], e.g. :func:`unresolvable_parts`), which it
    may have (within ``optional_tol``: a merged peak lies between the two people's parts) or not.
    """
    expected = expected_parts(keypoints, topology)
    optional = np.zeros_like(expected) if optional is None else optional & expected
    has = found[:, :, 2] > 0  # [D, C]
    with np.errstate(invalid="ignore"):
        dist = np.hypot(found[None, :, :, 0] - keypoints[:, None, :, 0],
                        found[None, :, :, 1] - keypoints[:, None, :, 1])  # [O, D, C], NaN if absent
    close = has[None] & (dist <= np.where(optional, optional_tol, tol)[:, None, :])
    required = expected & ~optional
    ok_required = np.all(close | ~required[:, None, :], axis=2)
    ok_extra = np.all(~has[None] | close & expected[:, None, :], axis=2)
    matched: np.ndarray = np.any(ok_required & ok_extra, axis=1)
    return matched


def sampled_cell(keypoints: np.ndarray, topology: Topology, t: float = 0.5) -> tuple[int, int, int]:
    """(paf channel, row, column): the cell the decoder samples at ``t`` (float32, e.g. 0.5: the
    midpoint) on the first link of ``topology`` that joins two keypoints of one decoded person
    (``keypoints``: float[C, 3] x, y, score in cells, NaN / 0 where absent), read through the link's
    y channel. Computed like the decoder (float32, nearest cell). ValueError when no link joins two.
    """
    for k, (part_a, part_b) in enumerate(topology.links):
        if keypoints[part_a, 2] > 0 and keypoints[part_b, 2] > 0:
            ax, ay = np.float32(keypoints[part_a, 0]), np.float32(keypoints[part_a, 1])
            dx, dy = np.float32(keypoints[part_b, 0]) - ax, np.float32(keypoints[part_b, 1]) - ay
            return 2 * k, int(ay + np.float32(t) * dy), int(ax + np.float32(t) * dx)
    raise ValueError("no link joins two keypoints of this person")


def recovered_share(decode: Callable[[np.ndarray, np.ndarray], np.ndarray], scene_type: str, scenes: int,
                    rng: np.random.Generator, topology: Topology = COCO18, min_parts: int = 3) -> float:
    """Share of the people of ``scenes`` scenes of ``SCENE_TYPES[scene_type]`` (drawn from ``rng``) that
    ``decode`` recovers exactly (:func:`recovered`); people with fewer than ``min_parts`` expected parts
    are not counted. decode: (cmap, paf) -> found keypoints float[D, C, 3] (``Poses.keypoints``).
    """
    ok = total = 0
    for _ in range(scenes):
        scene = SCENE_TYPES[scene_type].sample(rng)
        use = expected_parts(scene.keypoints, topology).sum(axis=1) >= min_parts
        ok += int(recovered(scene.keypoints, decode(scene.cmap, scene.paf), topology)[use].sum())
        total += int(use.sum())
    return ok / total
