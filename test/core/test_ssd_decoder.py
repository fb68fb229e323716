"""SsdDecoder against a straightforward loop implementation, box decoding by hand, parameters."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from trt_perception.core.decode import create_decoder
from trt_perception.core.decode.ssd import Detections, SsdDecoder
from trt_perception.core.decode.ssd.anchors import ssd_anchor_generator
from trt_perception.core.decode.ssd.box_coding import BoxCoder
from trt_perception.core.geometry import ResizeGeometry
from trt_perception.core.model_config import ModelConfigError, load_model_config, model_config_from_dict

ROOT = Path(__file__).resolve().parents[2]
MODEL_YAML = ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"
ANCHORS = ssd_anchor_generator([6, 3, 1], (300, 300))          # 6*6*3 + 3*3*6 + 6 = 168 anchors


def _reference(enc, logits, anchors, order, factors, converter, has_background, threshold, iou,
               pre_k, top_k, class_filter, src_w, src_h, dst, mode):
    """Loop implementation of the documented decoding steps, in float64."""
    scale = min(dst / src_w, dst / src_h) if mode == "letterbox" else None
    content_w = min(dst, max(1, round(src_w * scale))) if scale else dst
    content_h = min(dst, max(1, round(src_h * scale))) if scale else dst
    pad_x, pad_y = (dst - content_w) // 2, (dst - content_h) // 2
    candidates = []
    for a in range(len(anchors)):
        row = [float(v) for v in logits[a]]
        if converter == "sigmoid":
            probs = [1 / (1 + math.exp(-v)) for v in row]
        elif converter == "softmax":
            e = [math.exp(v - max(row)) for v in row]
            probs = [v / sum(e) for v in e]
        else:
            probs = row
        for c, p in enumerate(probs):
            if (has_background and c == 0) or (class_filter and c not in class_filter):
                continue
            if p > threshold:
                candidates.append((a, c, p))
    per_class = defaultdict(list)
    for i, (_, c, p) in enumerate(candidates):
        per_class[c].append((-p, i))
    chosen = sorted(i for items in per_class.values() for _, i in sorted(items)[:pre_k])
    candidates = [candidates[i] for i in chosen]
    boxes = []
    for a, _, _ in candidates:
        t = dict(zip(order, (float(v) for v in enc[a])))
        f = dict(zip(order, factors))
        cx_a, cy_a, w_a, h_a = (float(v) for v in anchors[a])
        cx, cy = t["x"] / f["x"] * w_a + cx_a, t["y"] / f["y"] * h_a + cy_a
        w = math.exp(min(t["w"] / f["w"], math.log(1000 / 16))) * w_a
        h = math.exp(min(t["h"] / f["h"], math.log(1000 / 16))) * h_a
        nx0, ny0, nx1, ny1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        boxes.append([(nx0 * dst - pad_x) * src_w / content_w, (ny0 * dst - pad_y) * src_h / content_h,
                      (nx1 * dst - pad_x) * src_w / content_w, (ny1 * dst - pad_y) * src_h / content_h])

    def iou_of(p, q):
        iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
        ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
        union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    kept = []
    for i in sorted(range(len(candidates)), key=lambda i: (-candidates[i][2], i)):
        if all(candidates[i][1] != candidates[k][1] or iou_of(boxes[i], boxes[k]) <= iou for k in kept):
            kept.append(i)
    result = []
    for i in kept:
        x0, y0, x1, y1 = boxes[i]
        x0, x1 = min(max(x0, 0), src_w), min(max(x1, 0), src_w)
        y0, y1 = min(max(y0, 0), src_h), min(max(y1, 0), src_h)
        if x1 > x0 and y1 > y0:
            result.append(([x0, y0, x1, y1], candidates[i][2], candidates[i][1]))
    return result[:top_k]


CASES = [
    # converter, order, classes, threshold, iou, pre_k, top_k, class_filter, source size, mode
    ("sigmoid", "yxhw", 2, 0.3, 0.6, 100, 100, [], (640, 480), "stretch"),
    ("sigmoid", "xywh", 4, 0.2, 0.45, 5, 7, [], (300, 500), "letterbox"),
    ("softmax", "xywh", 5, 0.15, 0.5, 100, 100, [], (800, 450), "letterbox"),
    ("softmax", "yxhw", 5, 0.1, 0.3, 3, 100, [2, 4], (320, 320), "stretch"),
    ("identity", "yxhw", 3, 0.5, 0.7, 100, 4, [], (1280, 720), "stretch"),
    ("sigmoid", "yxhw", 3, 0.0, 0.5, 20, 100, [], (200, 100), "letterbox"),
    ("sigmoid", "xywh", 4, 0.25, 0.5, 100, 100, [3], (640, 360), "letterbox"),  # one class column of several
    ("identity", "xywh", 4, 0.4, 0.5, 100, 100, [2], (300, 300), "stretch"),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}-{c[9]}" for c in CASES])
def test_decoder_matches_loop_reference(case: tuple, seed: int) -> None:
    converter, order, num_classes, threshold, iou, pre_k, top_k, class_filter, (w, h), mode = case
    rng = np.random.default_rng(seed)
    count = len(ANCHORS)
    enc = rng.normal(0, 1.5, size=(1, count, 4)).astype(np.float32)
    if converter == "identity":
        logits = rng.uniform(0, 1, size=(1, count, num_classes)).astype(np.float32)
    else:
        logits = rng.normal(-2.0, 2.0, size=(1, count, num_classes)).astype(np.float32)
    factors = (10.0, 10.0, 5.0, 5.0) if order == "yxhw" else (10.0, 10.0, 5.0, 5.0)[::-1]
    labels = ["background"] + [f"class{i}" for i in range(1, num_classes)]
    decoder = SsdDecoder(ANCHORS, BoxCoder(order, factors), converter, labels,
                         score_threshold=threshold, nms_iou_threshold=iou, pre_nms_top_k=pre_k,
                         top_k=top_k, class_filter=class_filter)
    geometry = ResizeGeometry.create(w, h, 300, 300, mode)
    got = decoder({"box_encodings": enc, "class_predictions": logits}, geometry)
    expected = _reference(enc[0], logits[0], ANCHORS.astype(np.float64), list(order), factors, converter,
                          True, threshold, iou, pre_k, top_k, class_filter, w, h, 300, mode)
    assert len(expected) > 2, "the case should produce several detections"
    assert len(got) == len(expected)
    assert got.class_ids.tolist() == [c for _, _, c in expected]
    np.testing.assert_allclose(got.scores, [s for _, s, _ in expected], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.boxes_xyxy, [b for b, _, _ in expected], atol=2e-3)
    assert got.labels == [labels[c] for _, _, c in expected]
    assert got.boxes_xyxy.dtype == np.float32 and got.scores.dtype == np.float32
    assert got.class_ids.dtype == np.int32
    assert np.all(np.diff(got.scores) <= 0)


def test_box_decoding_by_hand() -> None:
    """The TF faster_rcnn coder formula from the model's decoding notes, on one anchor."""
    anchors = np.array([[0.5, 0.5, 0.1, 0.2]], np.float32)             # cx, cy, w, h
    tf_encoding = np.array([[1.0, -1.0, 0.0, 5 * math.log(2)]], np.float32)   # ty, tx, th, tw
    box = BoxCoder("yxhw", (10, 10, 5, 5)).decode(tf_encoding, anchors)
    # yc = 1/10*0.2 + 0.5 = 0.52, xc = -1/10*0.1 + 0.5 = 0.49, h = 0.2, w = 2 * 0.1 = 0.2
    np.testing.assert_allclose(box, [[0.39, 0.42, 0.59, 0.62]], atol=1e-6)
    torch_encoding = tf_encoding[:, [1, 0, 3, 2]]                      # tx, ty, tw, th
    np.testing.assert_allclose(BoxCoder("xywh", (10, 10, 5, 5)).decode(torch_encoding, anchors), box)


def _one_hot_outputs(anchor: int, class_id: int, num_classes: int = 3, logit: float = 4.0):
    logits = np.full((1, len(ANCHORS), num_classes), -9.0, np.float32)
    logits[0, anchor, class_id] = logit
    return {"box_encodings": np.zeros((1, len(ANCHORS), 4), np.float32), "class_predictions": logits}


def test_single_anchor_detection_lands_on_the_anchor() -> None:
    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["background", "car", "person"])
    geometry = ResizeGeometry.create(600, 300, 300, 300, "stretch")
    dets = decoder(_one_hot_outputs(7, 2), geometry)
    cx, cy, w, h = ANCHORS[7]
    expected = [(cx - w / 2) * 600, (cy - h / 2) * 300, (cx + w / 2) * 600, (cy + h / 2) * 300]
    expected = np.clip(expected, 0, [600, 300, 600, 300])
    assert dets.labels == ["person"] and dets.class_ids.tolist() == [2]
    np.testing.assert_allclose(dets.boxes_xyxy[0], expected, atol=1e-3)
    np.testing.assert_allclose(dets.scores, [1 / (1 + math.exp(-4))], rtol=1e-6)


def test_nothing_above_threshold_and_background_never_reported() -> None:
    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["background", "car", "person"])
    geometry = ResizeGeometry.create(300, 300, 300, 300, "stretch")
    dets = decoder(_one_hot_outputs(3, 0), geometry)                  # only background fires
    assert isinstance(dets, Detections) and len(dets) == 0
    assert dets.boxes_xyxy.shape == (0, 4) and dets.labels == []


def test_class_filter_by_label_and_id() -> None:
    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["background", "car", "person"])
    geometry = ResizeGeometry.create(300, 300, 300, 300, "stretch")
    outputs = _one_hot_outputs(5, 1)
    outputs["class_predictions"][0, 9, 2] = 4.0                       # a person too
    assert sorted(decoder(outputs, geometry).labels) == ["car", "person"]
    decoder.set_params({"class_filter": ["person"]})
    assert decoder(outputs, geometry).labels == ["person"]
    decoder.set_params({"class_filter": [1]})
    assert decoder(outputs, geometry).labels == ["car"]
    assert decoder.runtime_params()["class_filter"] == [1]


@pytest.mark.parametrize("params, message", [
    ({"score_threshold": 1.0}, r"score_threshold must be a number in \[0.0, 1.0\)"),
    ({"score_threshold": "high"}, "score_threshold"),
    ({"nms_iou_threshold": 1.5}, "nms_iou_threshold"),
    ({"top_k": 0}, "top_k must be an integer >= 1"),
    ({"pre_nms_top_k": 2.5}, "pre_nms_top_k must be an integer"),
    ({"top_k": True}, "top_k must be an integer"),
    ({"class_filter": "person"}, "class_filter must be a list"),
    ({"class_filter": ["truck"]}, "label 'truck' is not a class label"),
    ({"class_filter": [0]}, "id 0 is not a detectable class"),
    ({"class_filter": [3]}, "id 3 is not a detectable class"),
    ({"iou": 0.5}, "unknown parameter 'iou'"),
])
def test_invalid_params_raise_and_change_nothing(params: dict, message: str) -> None:
    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["background", "car", "person"])
    before = decoder.runtime_params()
    with pytest.raises(ValueError, match=message):
        decoder.set_params({"top_k": 5, **params} if "top_k" not in params else params)
    assert decoder.runtime_params() == before


def test_output_shape_and_label_mismatches_are_explained() -> None:
    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["background", "person"])
    geometry = ResizeGeometry.create(300, 300, 300, 300, "stretch")
    outputs = _one_hot_outputs(0, 1, num_classes=2)
    with pytest.raises(ValueError, match="makes 168 anchors"):
        decoder({**outputs, "box_encodings": np.zeros((1, 100, 4), np.float32)}, geometry)
    with pytest.raises(ValueError, match="class_predictions has shape"):
        decoder({**outputs, "class_predictions": np.zeros((1, 100, 2), np.float32)}, geometry)
    with pytest.raises(ValueError, match="3 columns but the labels file has 2 lines"):
        decoder(_one_hot_outputs(0, 1, num_classes=3), geometry)


def test_from_config_builds_the_shipped_model_decoder() -> None:
    config = load_model_config(MODEL_YAML)
    decoder = create_decoder(config)
    assert isinstance(decoder, SsdDecoder) and len(decoder.anchors) == 1917
    assert decoder.runtime_params() == {"score_threshold": 0.5, "nms_iou_threshold": 0.6,
                                        "pre_nms_top_k": 100, "top_k": 100, "class_filter": []}
    assert decoder.labels == ["background", "pedestrian"]


@pytest.mark.parametrize("decoder_section, message", [
    ({}, "an 'anchors' mapping is required"),
    ({"anchors": {"type": "grid", "feature_map_sizes": [2]}}, "decoder.anchors: anchors.type"),
    ({"anchors": {"type": "ssd_anchor_generator", "feature_map_sizes": [2]}, "nms": 0.5}, "unknown keys"),
    ({"anchors": {"type": "ssd_anchor_generator", "feature_map_sizes": [2]},
      "box_coder": {"order": "xyxy"}}, "box_coder.order must be one of"),
    ({"anchors": {"type": "ssd_anchor_generator", "feature_map_sizes": [2]},
      "score_converter": "tanh"}, "score_converter must be one of"),
    ({"anchors": {"type": "ssd_anchor_generator", "feature_map_sizes": [2]},
      "score_threshold": -0.1}, "score_threshold"),
])
def test_bad_decoder_sections_raise_model_config_errors(decoder_section: dict, message: str) -> None:
    raw = {"task": "ssd", "model": MODEL_YAML.parent / "ssdlite_pedestrian_raw_nchw.onnx",
           "input": "x", "outputs": {"box_encodings": "a", "class_predictions": "b"},
           "preprocess": {"width": 300, "height": 300}, "decoder": decoder_section}
    config = model_config_from_dict(raw, MODEL_YAML.parent)
    with pytest.raises(ModelConfigError, match=message):
        create_decoder(config)


def test_set_params_while_a_selector_is_built_never_caches_the_old_threshold(monkeypatch) -> None:
    """Review defect 1: set_params (executor thread) landing while decode (input thread) builds a
    candidate selector. The interleaving is forced: the selector constructor calls set_params as
    the other thread would, after the decode thread read the old threshold. The decoder must then
    filter at the new threshold from the next frame on, never keep a selector of the old one."""
    import trt_perception.core.decode.ssd.decoder as decoder_module

    decoder = SsdDecoder(ANCHORS, BoxCoder(), labels=["bg", "a", "b"], score_threshold=0.3)
    real = decoder_module.CandidateSelector
    interleave = [True]

    def selector_then_set_params(*args, **kwargs):
        selector = real(*args, **kwargs)
        if interleave.pop() if interleave else False:
            decoder.set_params({"score_threshold": 0.9})
        return selector

    monkeypatch.setattr(decoder_module, "CandidateSelector", selector_then_set_params)
    rng = np.random.default_rng(3)
    enc = rng.normal(0, 0.5, (1, len(ANCHORS), 4)).astype(np.float32)
    probs = np.full((1, len(ANCHORS), 3), 0.01, np.float32)
    probs[0, :20, 1] = np.linspace(0.35, 0.85, 20)   # scores between the old and the new threshold
    logits = np.log(probs / (1 - probs)).astype(np.float32)
    geometry = ResizeGeometry.create(300, 300, 300, 300, "stretch")
    outputs = {"box_encodings": enc, "class_predictions": logits}
    decoder(outputs, geometry)  # the frame being decoded when the change arrives
    assert decoder.runtime_params()["score_threshold"] == 0.9
    later = decoder(outputs, geometry)
    assert len(later) == 0, f"filtered at the old threshold: scores {later.scores.tolist()}"
