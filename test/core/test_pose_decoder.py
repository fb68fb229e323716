"""The pose decoder end to end on fields synthesised from known skeletons, and its edge cases."""

import numpy as np
import pytest

from trt_perception.core.decode import create_decoder
from trt_perception.core.decode.pose import COCO18, PoseDecoder, PoseFieldError, PoseParams, PoseParser, Topology
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfigError, model_config_from_dict
from trt_perception.testing.pose_fields import (
    expected_parts,
    random_person,
    random_scene,
    recovered,
    render_fields,
    sampled_cell,
    unresolvable_parts,
)


def _share(num_people, separated, scenes, seed):
    rng = np.random.default_rng(seed)
    parser = PoseParser()
    hits = total = 0
    for _ in range(scenes):
        scene = random_scene(rng, num_people, placement="separated" if separated else "free")
        poses = parser(scene.cmap, scene.paf)
        ok = recovered(scene.keypoints, poses.keypoints, COCO18,
                       optional=unresolvable_parts(scene.keypoints, COCO18))
        counted = expected_parts(scene.keypoints, COCO18).sum(axis=1) >= 3  # min_parts
        hits += int(ok[counted].sum())
        total += int(counted.sum())
    return hits / total


@pytest.mark.parametrize("num_people", [1, 3, 6])
def test_separated_people_are_all_recovered(num_people):
    assert _share(num_people, separated=True, scenes=15, seed=num_people) == 1.0


@pytest.mark.parametrize("bump_sigma", [1.2, 2.0])
def test_separated_people_with_other_bump_widths_than_sigma_are_all_recovered(bump_sigma):
    # hidden peaks use the width measured on the map, not the given sigma (1.5)
    rng = np.random.default_rng(11)
    parser = PoseParser()
    for _ in range(8):
        scene = random_scene(rng, 4, placement="separated", height_range=(12.0, 30.0), sigma=bump_sigma)
        counted = expected_parts(scene.keypoints, COCO18).sum(axis=1) >= 3
        assert recovered(scene.keypoints, parser(scene.cmap, scene.paf).keypoints, COCO18)[counted].all()


@pytest.mark.parametrize("num_people, at_least", [(5, 0.92), (20, 0.75)])
def test_crossing_people_are_mostly_recovered(num_people, at_least):
    assert _share(num_people, separated=False, scenes=12, seed=100 + num_people) >= at_least


def test_crossing_limbs_and_adjacent_people():
    rng = np.random.default_rng(7)
    a = random_person(rng, 30, (20, 28), angle=0.3)
    b = random_person(rng, 30, (27, 28), angle=-0.3)  # overlapping, limbs crossing
    c = random_person(rng, 30, (45, 28))
    people = np.stack([a, b, c])
    cmap, paf = render_fields(people, COCO18, 56, 56)
    poses = PoseParser()(cmap, paf)
    ok = recovered(people, poses.keypoints, COCO18, optional=unresolvable_parts(people, COCO18))
    assert ok.all()


def test_people_cut_by_the_border_keep_their_visible_parts():
    rng = np.random.default_rng(3)
    person = random_person(rng, 40, (2.0, 28.0))  # left half outside the map
    person[(person[:, 0] < 0) | (person[:, 0] >= 56)] = np.nan
    cmap, paf = render_fields(person[None], COCO18, 56, 56)
    poses = PoseParser(params=PoseParams(min_parts=1))(cmap, paf)
    assert recovered(person[None], poses.keypoints, COCO18).all()


def _chain_fields(topology, people, ghosts=(), link_gain=None):
    """cmap of ``people`` (float[O, C, 2], NaN: not drawn); paf of the people and of ``ghosts``
    (limbs whose field is there but whose parts are not: occluded keypoints), on a 30 x 40 map."""
    people = np.asarray(people, dtype=float)
    cmap, paf = render_fields(people, topology, 30, 40, link_gain=link_gain)
    for ghost in ghosts:
        paf += render_fields(np.asarray(ghost, dtype=float)[None], topology, 30, 40)[1]
    return cmap, paf


def test_a_person_whose_partner_is_missing_is_not_linked_to_a_half_aligned_one():
    # A's wrist is missing; B's elbow is occluded but its forearm field is there, along the second
    # half of the segment from A's elbow to B's wrist: the field follows only part of that segment
    topology = Topology(("elbow", "wrist"), np.array([[0, 1]]))
    nan = [np.nan, np.nan]
    cmap, paf = _chain_fields(topology, [[[4.5, 10.5], nan], [nan, [24.5, 10.5]]],
                              ghosts=[[[14.5, 10.5], [24.5, 10.5]]])
    poses = PoseParser(topology, PoseParams(min_parts=1))(cmap, paf)
    assert len(poses) == 2 and (poses.keypoints[:, :, 2] > 0).sum(axis=1).tolist() == [1, 1]
    # the segment's mean projection alone would link them (trt_pose's rule)
    linked = PoseParser(topology, PoseParams(min_parts=1, min_sample_fraction=0.0, end_weight=0.0))(cmap, paf)
    assert len(linked) == 1


def test_a_wrong_connection_does_not_give_a_person_two_peaks_of_one_part():
    # triangle a-b-c; person 1 (a1, b1, c1) with a faint a->c field, person 2 (b2, c2) whose a is
    # occluded, and a strong a->c field from a1 to c2: the assignment picks a1 -> c2, which would
    # give person 1 a second b and c; it is refused and both people keep their own peaks
    topology = Topology(("a", "b", "c"), np.array([[0, 1], [1, 2], [0, 2]]))
    one = [[5.5, 5.5], [5.5, 15.5], [12.5, 12.5]]
    two = [[np.nan, np.nan], [18.5, 20.5], [18.5, 8.5]]
    cmap, paf = _chain_fields(topology, [one, two], ghosts=[[[5.5, 5.5], [np.nan, np.nan], [18.5, 8.5]]],
                              link_gain=np.array([[1.0, 1.0, 0.3], [1.0, 1.0, 1.0]]))
    poses = PoseParser(topology, PoseParams(min_parts=1))(cmap, paf)
    found = sorted(np.round(person[person[:, 2] > 0, :2], 1).tolist() for person in poses.keypoints)
    assert found == sorted([one, two[1:]])


@pytest.mark.parametrize("gap", [1.8, 2.0, 2.5])
def test_two_wrists_merged_into_one_peak_are_both_recovered(gap):
    # two arms reach towards each other from both sides; the wrists, gap cells apart, make a single
    # confidence-map maximum (the weaker wrist is a shoulder of the stronger one's bump)
    topology = Topology(("shoulder", "elbow", "wrist"), np.array([[0, 1], [1, 2]]))
    wrist = np.array([18.3, 14.2])
    one = [[5.5, 8.0], [11.5, 12.5], wrist]
    two = [[33.0, 9.5], [26.0, 17.0], wrist + [gap * 0.8, gap * 0.6]]
    people = np.array([one, two], dtype=float)
    gain = np.array([[1.0, 1.0, 1.0], [0.9, 0.9, 0.7]])
    cmap, paf = render_fields(people, topology, 30, 40, part_gain=gain)
    without = PoseParser(topology, PoseParams(min_parts=1, sigma=0.0))(cmap, paf).keypoints  # no hidden peaks
    assert len(without) == 2 and (without[:, 2, 2] > 0).sum() == 1  # one wrist peak: someone lacks it
    found = PoseParser(topology, PoseParams(min_parts=1))(cmap, paf).keypoints
    assert recovered(people, found, topology).all()


def test_hidden_peaks_are_looked_for_when_some_part_has_two_peaks():
    # person 2's "a" merges into person 1's; with person 2's "b" drawn, part b has two peaks (two
    # people in view) and the hidden "a" is found; without it, one peak per part: one person
    topology = Topology(("a", "b"), np.array([[0, 1]]))
    one = [[10.3, 10.2], [10.0, 20.0]]
    two = [[12.3, 10.2], [17.0, 19.0]]
    gain = np.array([[1.0, 1.0], [0.7, 1.0]])
    for drawn_b, people_found in ((True, 2), (False, 1)):
        people = np.array([one, two if drawn_b else [two[0], [np.nan, np.nan]]])
        cmap, paf = render_fields(people, topology, 30, 40, part_gain=gain)
        found = PoseParser(topology, PoseParams(min_parts=1))(cmap, paf).keypoints
        assert int((found[:, 0, 2] > 0).sum()) == people_found
        if drawn_b:
            assert recovered(people, found, topology).all()


def test_keypoint_and_person_scores():
    rng = np.random.default_rng(5)
    person = random_person(rng, 36, (28, 28))
    gain = np.full((1, 18), 0.7)
    cmap, paf = render_fields(person[None], COCO18, 56, 56, part_gain=gain)
    poses = PoseParser()(cmap, paf)
    present = poses.keypoints[0, :, 2] > 0
    assert np.array_equal(present, ~np.isnan(person[:, 0]))
    # the value at the peak cell: a keypoint is at most sqrt(0.5) cells from its cell's centre
    values = poses.keypoints[0, present, 2]
    assert np.all(values <= 0.7 + 1e-6) and np.all(values >= 0.7 * np.exp(-0.5 / (2 * 1.5 ** 2)) - 1e-6)
    assert 0.7 < poses.scores[0] <= 1.0  # mean of keypoint (0.7) and link (~1) scores


def test_min_parts_min_score_and_max_people_filter():
    scene = random_scene(np.random.default_rng(11), 4, placement="separated")
    every = PoseParser(params=PoseParams(min_parts=1))(scene.cmap, scene.paf)
    assert len(every) >= 4
    assert np.all(np.diff(every.scores) <= 0)
    parts = (every.keypoints[:, :, 2] > 0).sum(axis=1)
    big = PoseParser(params=PoseParams(min_parts=8))(scene.cmap, scene.paf)
    assert len(big) == int((parts >= 8).sum())
    two = PoseParser(params=PoseParams(min_parts=1, max_people=2))(scene.cmap, scene.paf)
    assert np.array_equal(two.scores, every.scores[:2])
    cut = float(every.scores[1])
    assert len(PoseParser(params=PoseParams(min_parts=1, min_score=cut))(scene.cmap, scene.paf)) == \
        int((every.scores >= cut).sum())


def test_empty_maps_and_a_single_part():
    cmap = np.zeros((18, 56, 56), dtype=np.float32)
    paf = np.zeros((42, 56, 56), dtype=np.float32)
    assert len(PoseParser()(cmap, paf)) == 0
    cmap[5, 10, 20] = 0.9
    assert len(PoseParser()(cmap, paf)) == 0  # below min_parts
    poses = PoseParser(params=PoseParams(min_parts=1))(cmap, paf)
    assert len(poses) == 1 and (poses.keypoints[0, :, 2] > 0).tolist() == [p == 5 for p in range(18)]
    assert poses.keypoints[0, 5, :2].tolist() == [20.5, 10.5] and not poses.links.any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", ["cmap", "paf"])
def test_nan_and_inf_are_refused(field, bad):
    """Anywhere in cmap; in paf where a limb is sampled (here the midpoint of a decoded person's link)."""
    scene = random_scene(np.random.default_rng(1), 2)
    arrays = {"cmap": scene.cmap.copy(), "paf": scene.paf.copy()}
    if field == "cmap":
        arrays["cmap"][3, 4, 5] = bad
    else:
        arrays["paf"][sampled_cell(PoseParser()(scene.cmap, scene.paf).keypoints[0], COCO18)] = bad
    with pytest.raises(PoseFieldError, match=f"{field} has 1 NaN/Inf"):
        PoseParser()(arrays["cmap"], arrays["paf"])


@pytest.mark.parametrize("cmap_shape, paf_shape, message", [
    ((17, 56, 56), (42, 56, 56), r"cmap must have shape \[18, H, W\]"),
    ((18, 56, 56), (40, 56, 56), r"paf must have shape \[42, H, W\]"),
    ((18, 56, 56), (42, 28, 28), "same size"),
    ((18, 56), (42, 56, 56), "cmap must have shape"),
])
def test_shape_mismatches_are_refused(cmap_shape, paf_shape, message):
    with pytest.raises(PoseFieldError, match=message):
        PoseParser()(np.zeros(cmap_shape, np.float32), np.zeros(paf_shape, np.float32))


def _config(tmp_path, decoder=None, outputs=None):
    (tmp_path / "m.onnx").write_bytes(b"stand-in file; the decoder never opens it")
    raw = {"task": "pose", "model": "m.onnx", "input": "input",
           "outputs": outputs or {"cmap": "cmap", "paf": "paf"},
           "preprocess": {"width": 224, "height": 224}, "decoder": decoder or {}}
    return model_config_from_dict(raw, tmp_path, source=tmp_path / "m.yaml")


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
def test_decoder_reports_keypoints_in_source_pixels(tmp_path, mode):
    decoder = create_decoder(_config(tmp_path))
    assert isinstance(decoder, PoseDecoder) and decoder.roles == ("cmap", "paf")
    person = random_person(np.random.default_rng(2), 30, (28, 30))
    cmap, paf = render_fields(person[None], COCO18, 56, 56)
    geometry = ResizeGeometry.create(640, 480, 224, 224, mode)
    skeletons = decoder({"cmap": cmap[None], "paf": paf[None]}, geometry)
    assert len(skeletons) == 1
    # truth: map cells -> model pixels (4 per cell) -> source pixels
    tx, ty = geometry.to_source(person[:, 0] * 4.0, person[:, 1] * 4.0)
    visible = np.flatnonzero(~np.isnan(person[:, 0]))
    assert skeletons[0].parts.tolist() == visible.tolist()
    assert np.allclose(skeletons[0].xy, np.stack([tx, ty], 1)[visible], atol=0.05 * 640 / 224)
    assert len(skeletons[0].links) > 0


def test_from_config_reads_parameters_and_topology(tmp_path):
    (tmp_path / "topo.json").write_text('{"keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [2, 3]]}')
    decoder = PoseDecoder.from_config(_config(tmp_path, {"topology": "topo.json", "min_parts": 2}))
    assert decoder.topology.parts == ("a", "b", "c") and decoder.params.min_parts == 2
    with pytest.raises(ModelConfigError, match="unknown pose decoder parameters"):
        PoseDecoder.from_config(_config(tmp_path, {"peak_treshold": 0.2}))
    with pytest.raises(ModelConfigError, match="cannot read topology file"):
        PoseDecoder.from_config(_config(tmp_path, {"topology": "missing.json"}))
    with pytest.raises(ModelConfigError, match=r"needs outputs \['cmap', 'paf'\]"):
        PoseDecoder.from_config(_config(tmp_path, outputs={"cmap": "cmap"}))


def test_runtime_params_change_atomically():
    decoder = PoseDecoder()
    decoder.set_params({"peak_threshold": 0.3, "min_parts": 5})
    assert decoder.runtime_params()["peak_threshold"] == 0.3 and decoder.params.min_parts == 5
    with pytest.raises(ValueError, match="link_threshold must be in"):
        decoder.set_params({"min_parts": 2, "link_threshold": 1.5})
    assert decoder.params.min_parts == 5  # nothing changed
    with pytest.raises(ValueError, match="cannot change at runtime"):
        decoder.set_params({"peak_window": 5})
    with pytest.raises(ValueError, match="must be an integer"):
        decoder.set_params({"max_people": 2.5})


def test_noise_factor_is_a_runtime_parameter():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.05, (18, 56, 56)).astype(np.float32)
    paf = rng.normal(0.0, 0.05, (42, 56, 56)).astype(np.float32)
    outputs, geometry = {"cmap": noise[None], "paf": paf[None]}, ResizeGeometry.create(224, 224, 224, 224, "stretch")
    decoder = PoseDecoder()
    assert decoder.runtime_params()["noise_factor"] == PoseParams().noise_factor
    assert decoder(outputs, geometry) == []  # the noise makes no peaks
    decoder.set_params({"noise_factor": 0.0})  # off: the noise makes peaks and people (compiled params re-packed)
    assert decoder.params.noise_factor == 0.0 and len(decoder(outputs, geometry)) > 0
    with pytest.raises(ValueError, match="noise_factor must be >= 0"):
        decoder.set_params({"noise_factor": -1.0})
    assert decoder.params.noise_factor == 0.0


def test_peaks_at_or_below_zero_with_a_negative_peak_threshold(recwarn):
    cmap = np.full((18, 8, 8), -2.0, dtype=np.float32)
    cmap[0, 2, 2], cmap[0, 5, 5] = -0.2, 0.9  # two peaks of part 0, one of them negative
    params = PoseParams(min_parts=1, peak_threshold=-1.0, min_score=-1.0, noise_factor=0.0)
    poses = PoseParser(params=params)(cmap, np.zeros((42, 8, 8), np.float32))
    assert sorted(poses.keypoints[:, 0, 2].tolist()) == pytest.approx([-0.2, 0.9])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("values, message", [
    ({"sigma": -1.0}, "sigma must be in"), ({"sigma": 11.0}, "sigma must be in"),
    ({"hidden_margin": 0.0}, "hidden_margin must be > 0"),
    ({"sigma": float("nan")}, "sigma must be a finite number"),
])
def test_hidden_peak_parameters_are_checked(values, message):
    with pytest.raises(ValueError, match=message):
        PoseParams(**values)
