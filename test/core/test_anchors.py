"""Anchor generators: TF form against the model's own anchors, prior-box form against a loop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from trt_perception.core.decode.ssd.anchors import generate_anchors, prior_boxes, ssd_anchor_generator

DATA = Path(__file__).resolve().parents[1] / "data"

# from models/ssdlite_pedestrian/ssdlite_pedestrian_decoding.json (shared model material)
SSDLITE = dict(type="ssd_anchor_generator", feature_map_sizes=[19, 10, 5, 3, 2, 1], min_scale=0.2,
               max_scale=0.95, aspect_ratios=[1.0, 2.0, 0.5, 3.0, 0.3333],
               interpolated_scale_aspect_ratio=1.0, reduce_boxes_in_lowest_layer=True,
               base_anchor_size=[1.0, 1.0])


def test_tf_generator_matches_the_graphs_anchors() -> None:
    reference = np.load(DATA / "ssdlite_pedestrian_anchors.npy")      # (yc, xc, h, w), from TF
    anchors = generate_anchors(SSDLITE, (300, 300))
    assert anchors.shape == (1917, 4) and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors[:, [1, 0, 3, 2]], reference, atol=1e-6, rtol=0)


def test_tf_generator_non_square_input_scales_the_base_size() -> None:
    square = ssd_anchor_generator([3, 2], (300, 300))
    wide = ssd_anchor_generator([3, 2], (600, 300))              # width 600: base width halves
    np.testing.assert_allclose(wide[:, 2], square[:, 2] * 0.5, rtol=1e-6)
    np.testing.assert_allclose(wide[:, [0, 1, 3]], square[:, [0, 1, 3]], rtol=1e-6)


def _loop_prior_boxes(sizes, input_size, aspect_ratios, scales, steps, offset, clip):
    """Straightforward per-location loops written from the torchvision/Caffe description."""
    width, height = input_size
    out = []
    for k, size in enumerate(sizes):
        fh, fw = (size, size) if isinstance(size, int) else size
        for i in range(fh):
            for j in range(fw):
                if steps:
                    cx, cy = (j + offset) * steps[k] / width, (i + offset) * steps[k] / height
                else:
                    cx, cy = (j + offset) / fw, (i + offset) / fh
                s, s_next = scales[k], scales[k + 1]
                shapes = [(s, s), (math.sqrt(s * s_next), math.sqrt(s * s_next))]
                for ar in aspect_ratios[k]:
                    shapes.append((s * math.sqrt(ar), s / math.sqrt(ar)))
                    shapes.append((s / math.sqrt(ar), s * math.sqrt(ar)))
                for w, h in shapes:
                    if clip:
                        w, h = min(max(w, 0.0), 1.0), min(max(h, 0.0), 1.0)
                    out.append((cx, cy, w, h))
    return np.array(out)


def test_prior_boxes_ssd300_against_loop() -> None:
    """torchvision's SSD300-VGG16 configuration: 8732 default boxes."""
    kwargs = dict(feature_map_sizes=[38, 19, 10, 5, 3, 1], input_size=(300, 300),
                  aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                  scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
    anchors = prior_boxes(**kwargs, clip=True)
    assert anchors.shape == (8732, 4)
    np.testing.assert_allclose(anchors[0], [4 / 300, 4 / 300, 0.07, 0.07], rtol=1e-6)
    expected = _loop_prior_boxes(kwargs["feature_map_sizes"], (300, 300), kwargs["aspect_ratios"],
                                 kwargs["scales"], kwargs["steps"], 0.5, True)
    np.testing.assert_allclose(anchors, expected, rtol=1e-6, atol=1e-7)


def test_prior_boxes_rectangular_grids_default_scales_against_loop() -> None:
    sizes = [[4, 6], [2, 3], 1]
    anchors = prior_boxes(sizes, (320, 240), aspect_ratios=[[2], [2, 3], [2]], offset=0.25)
    scales = [0.15, 0.15 + 0.75 / 2, 0.9, 1.0]            # linear 0.15 .. 0.9, then 1.0
    expected = _loop_prior_boxes(sizes, (320, 240), [[2], [2, 3], [2]], scales, None, 0.25, False)
    np.testing.assert_allclose(anchors, expected, rtol=1e-6, atol=1e-7)
    assert anchors[:, 2:].max() > 1.0                     # not clipped unless asked


@pytest.mark.parametrize("section, message", [
    ({"type": "yolo", "feature_map_sizes": [2]}, "anchors.type must be one of"),
    ({"type": "prior_box", "aspect_ratios": [[2]]}, "feature_map_sizes is required"),
    ({**SSDLITE, "colour": 1}, "unexpected keyword argument 'colour'"),
    ({**SSDLITE, "scales": [0.1, 0.2]}, "scales has 2 values for 6 feature maps"),
    ({"type": "prior_box", "feature_map_sizes": [2, 1], "aspect_ratios": [[2]]}, "one list per feature map"),
    ({"type": "prior_box", "feature_map_sizes": [0], "aspect_ratios": [[]]}, "positive integer"),
])
def test_bad_anchor_sections_name_the_problem(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_anchors(section, (300, 300))
