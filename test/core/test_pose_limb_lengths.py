"""Limb-length consistency (:mod:`trt_perception.core.decode.pose.limb_lengths`): the weights, their compiled
twin, and what the rule does for crowded scenes."""

import dataclasses
import math

import numpy as np
import pytest

from trt_perception.core.decode.pose import PoseParams, PoseParser, compiled
from trt_perception.core.decode.pose.limb_lengths import group_medians, length_weights
from trt_perception.core.decode.pose.paf_score_graph import LinkCandidates
from trt_perception.testing.pose_fields import recovered_share

needs_compiled = pytest.mark.skipif(compiled.load() is None,
                                    reason="the compiled pose decoder is unavailable (numba missing?)")


def test_group_medians_are_numpys_median_per_key():
    rng = np.random.default_rng(0)
    key = rng.integers(0, 6, 50)
    value = rng.normal(size=50)
    got = group_medians(key, value, 8)
    for k in range(8):
        if (key == k).any():
            assert got[k] == np.median(value[key == k])
        else:
            assert np.isnan(got[k])


def _two_people() -> tuple[LinkCandidates, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Peaks 0-3 of person 0 (three unit-length links of types 0, 1, 2), peaks 4-7 of person 1 (the
    same links, length 2), and candidate 6: link type 0 from peak 0 to peak 8, alone (length 4, not
    chosen)."""
    x = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 12.0, 14.0, 16.0, 4.0])
    y = np.zeros(9)
    cand = LinkCandidates(link=np.array([0, 1, 2, 0, 1, 2, 0]), a=np.array([0, 1, 2, 4, 5, 6, 0]),
                          b=np.array([1, 2, 3, 5, 6, 7, 8]), score=np.full(7, 0.8))
    chosen = np.array([True] * 6 + [False])
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    return cand, chosen, group, x, y


def test_a_pair_far_longer_than_its_persons_limbs_loses_weight():
    cand, chosen, group, x, y = _two_people()
    weights = length_weights(cand, chosen, group, x, y, 3, 0.5, 0.15)
    # each person's limbs agree with its size (half and twice the typical length): no penalty
    assert np.all(weights[:6] == 0.8)
    # the long pair belongs to person 0 (its part_a peak): 4 cells where its limbs are 1
    assert weights[6] == pytest.approx(0.8 - 0.5 * (math.log(4.0) - 0.15))
    assert np.all(length_weights(cand, chosen, group, x, y, 3, 0.5, 1.5) == cand.score)  # within tolerance
    assert length_weights(cand, chosen, group, x, y, 3, 5.0, 0.15)[6] == 1e-6  # never below the floor


def test_pairs_without_joined_links_keep_their_score():
    cand, chosen, group, x, y = _two_people()
    alone = np.arange(9)  # nobody joined: no typical lengths, no person sizes
    assert np.all(length_weights(cand, chosen, alone, x, y, 3, 0.5, 0.15) == cand.score)


@needs_compiled
def test_compiled_length_weights_are_the_references():
    kernels = compiled.load()
    rng = np.random.default_rng(3)
    for _ in range(20):
        peaks, pairs, links = 30, 60, 5
        x, y = rng.uniform(0, 56, peaks), rng.uniform(0, 56, peaks)
        cand = LinkCandidates(link=np.sort(rng.integers(0, links, pairs)), a=rng.integers(0, peaks, pairs),
                              b=rng.integers(0, peaks, pairs), score=rng.uniform(0.1, 1.0, pairs))
        chosen, group = rng.random(pairs) < 0.6, rng.integers(0, 8, peaks)
        expected = length_weights(cand, chosen, group, x, y, links, 0.5, 0.15)
        got = kernels.length_weights(cand.link, cand.a, cand.b, cand.score, chosen, group, x, y, links, 0.5, 0.15)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", [-0.1, float("nan")])
def test_negative_length_parameters_are_refused(value):
    for name in ("length_weight", "length_tolerance"):
        with pytest.raises(ValueError, match=name):
            PoseParams(**{name: value})


def test_the_rule_recovers_more_people_in_crowds():
    """20 freely placed people: the limb-length rule recovers clearly more of them exactly (about 79 % ->
    84 % on the benchmark's scenes; here 8 scenes)."""
    def share(params):
        parser = PoseParser(params=params)
        return recovered_share(lambda cmap, paf: parser(cmap, paf).keypoints, "20 free, none missing", 8,
                               np.random.default_rng(5))

    assert share(PoseParams()) > share(dataclasses.replace(PoseParams(), length_weight=0.0)) + 0.02
