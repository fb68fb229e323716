"""INT8 sensitivity: a planted fragile layer ranks first and is the one kept in float; groups,
caching, and ``quantize --target-recall`` end to end on the shipped model (few frames)."""

import json
import shutil
from pathlib import Path

import onnx
import pytest

from trt_perception.cli import main
from trt_perception.core.precision.result_cache import ResultCache
from trt_perception.core.precision.sensitivity import (
    EvalSet,
    SensitivityError,
    SensitivitySweep,
    Target,
    int8_conv_share,
    layer_groups,
    onnx_runner,
)
from trt_perception.core.tensorrt.layer_precision import read_layer_precisions
from trt_perception.testing.tiny_onnx import chain_model, save_model
from trt_perception.testing.tiny_onnx import random_frames as frames

ROOT = Path(__file__).resolve().parents[2]


def evalset(model, n=6):
    tensors = frames(n, seed=5)
    run = onnx_runner(model, "x")
    return EvalSet("x", tensors, [run(t) for t in tensors])


@pytest.mark.parametrize("fragile", ["conv_b", "conv_c", "conv_d"])
def test_planted_fragile_layer_ranks_first_and_alone_stays_float(tmp_path, fragile):
    model = chain_model(tmp_path / "m.onnx", fragile=fragile)
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(layer_groups(model, depth=0))
        assert [g.group for g in ranking][0] == fragile
        assert ranking[0].loss[1] > 10 * ranking[1].loss[1]  # by far the worst
        assert all(g.convs == 1 for g in ranking)
        selection = sweep.select(ranking, Target(recall=None, precision=None, output_error=0.05))
        assert selection.reached and selection.float_groups == (fragile,) and selection.float_nodes == (fragile,)
        assert selection.steps[0].action == "full INT8" and not selection.steps[0].met
        assert selection.final.summary["int8_convs"] == 3
        mixed = sweep.quantize(tmp_path / "mixed.onnx", exclude=selection.float_nodes)
    assert int8_conv_share(mixed.output) == (3, 4)
    graph = onnx.load(str(mixed.output)).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    fragile_node = next(node for node in graph.node if node.name == fragile)
    assert producer[fragile_node.input[0]] != "DequantizeLinear"  # its input stays float


def test_backward_elimination_drops_groups_the_target_does_not_need(tmp_path):
    model = chain_model(tmp_path / "m.onnx", fragile="conv_c")
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(layer_groups(model, depth=0))
        misranked = [g for g in ranking if g.group == "conv_a"] + [g for g in ranking if g.group != "conv_a"]
        selection = sweep.select(misranked, Target(None, None, output_error=0.05))
    actions = [step.action for step in selection.steps]
    assert actions[:3] == ["full INT8", "keep conv_a in float", "keep conv_c in float"]
    assert "try conv_a in INT8 again" in actions and selection.float_groups == ("conv_c",)
    assert selection.reached and selection.final.met and selection.final.float_groups == ("conv_c",)


def test_selection_stops_at_the_float_budget(tmp_path):
    model = chain_model(tmp_path / "m.onnx", fragile="conv_c")
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(layer_groups(model, depth=0))
        selection = sweep.select(ranking, Target(None, None, output_error=0.05), max_float_convs=0)
    assert not selection.reached and selection.float_groups == ()
    with pytest.raises(SensitivityError, match="checks nothing"):
        Target(recall=None, precision=None).met(selection.steps[0].summary)


def test_margin_is_the_tighter_target():
    summary = {"detections": {"recall": 0.995, "precision": 0.97}, "output_error": 0.02}
    assert Target(0.99, 0.99).margin(summary) == pytest.approx(-0.02)  # precision is 0.02 short
    assert Target(0.99, None).margin(summary) == pytest.approx(0.005)
    assert Target(None, None, output_error=0.04).margin(summary) == pytest.approx(0.5)
    assert Target(0.99, 0.99).margin({"detections": {"recall": float("nan"), "precision": 1.0},
                                      "output_error": 0.0}) == float("-inf")  # nothing to match: worst
    with pytest.raises(SensitivityError, match="checks nothing"):
        Target(None, None).margin({"detections": None, "output_error": 0.0})


def test_forward_steps_re_measure_candidates_and_keep_the_best(tmp_path):
    """With the fragile conv second in a misranked order, trying 2 candidates per step keeps it first
    (ranking order alone would keep conv_a first and drop it again afterwards)."""
    model = chain_model(tmp_path / "m.onnx", fragile="conv_c")
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(layer_groups(model, depth=0))
        misranked = [g for g in ranking if g.group == "conv_a"] + [g for g in ranking if g.group != "conv_a"]
        selection = sweep.select(misranked, Target(None, None, output_error=0.05), candidates=2)
    actions = [step.action for step in selection.steps]
    assert actions == ["full INT8", "try keep conv_a in float", "try keep conv_c in float", "keep conv_c in float",
                       "try conv_c in INT8 again"]
    assert selection.reached and selection.float_groups == ("conv_c",) and selection.final.float_nodes == ("conv_c",)
    with pytest.raises(SensitivityError, match="candidates must be >= 1"):
        sweep.select(misranked, Target(None, None, output_error=0.05), candidates=0)
    with pytest.raises(SensitivityError, match="by must be one of"):
        sweep.select(misranked, Target(None, None, output_error=0.05), by="f1")


def test_forward_steps_by_output_error_keep_the_lowest_error_candidate(tmp_path):
    model = chain_model(tmp_path / "m.onnx", fragile="conv_c")
    target = Target(recall=None, precision=None, output_error=0.05)
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(layer_groups(model, depth=0))
        misranked = [g for g in ranking if g.group == "conv_a"] + [g for g in ranking if g.group != "conv_a"]
        by_error = sweep.select(misranked, target, candidates=2, by="error")
    assert [s.action for s in by_error.steps][:4] == ["full INT8", "try keep conv_a in float",
                                                    "try keep conv_c in float", "keep conv_c in float"]
    trials = {s.float_groups: s.summary["output_error"] for s in by_error.steps[1:3]}
    assert trials[("conv_c",)] < trials[("conv_a",)] and by_error.float_groups == ("conv_c",)


def test_node_refinement_returns_the_robust_nodes_of_a_kept_group_to_int8(tmp_path):
    model = chain_model(tmp_path / "m.onnx", fragile="conv_c")
    groups = {"front": ("conv_a",), "middle": ("conv_b", "conv_c"), "head": ("conv_d",)}
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax") as sweep:
        ranking = sweep.measure(groups)
        assert ranking[0].group == "middle" and ranking[0].convs == 2
        whole = sweep.select(ranking, Target(None, None, output_error=0.05))
        refined = sweep.select(ranking, Target(None, None, output_error=0.05), refine_nodes=True)
    assert whole.float_nodes == ("conv_b", "conv_c") and whole.final.summary["int8_convs"] == 2
    assert refined.reached and refined.float_groups == ("middle",) and refined.float_nodes == ("conv_c",)
    assert refined.final.summary["int8_convs"] == 3 and refined.final.met
    assert [s.action for s in refined.steps][-2:] == ["try node conv_c in INT8 again", "try node conv_b in INT8 again"]


def test_sweep_results_are_cached(tmp_path):
    model = chain_model(tmp_path / "m.onnx", fragile="conv_b")
    cache = ResultCache(tmp_path / "cache")
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax", cache=cache) as sweep:
        first = sweep.measure(layer_groups(model, depth=0))
        assert sweep.evaluations == 4
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax", cache=cache) as sweep:
        again = sweep.measure(layer_groups(model, depth=0))
        assert sweep.evaluations == 0 and [g.summary for g in again] == [g.summary for g in first]
    with SensitivitySweep(model, frames(12, seed=3), evalset(model), method="minmax", cache=cache) as sweep:
        sweep.measure({"conv_a": ("conv_a",)})
        assert sweep.evaluations == 1  # other calibration frames: measured again


@pytest.mark.parametrize("option, value, fragile", [("bias_correction", True, "conv_b"),
                                                    ("weight_rounding", True, None),
                                                    ("weight_rounding", "asymmetric", None)])
def test_bias_corrected_or_rounded_variants_are_cached_apart_and_share_the_ranges(tmp_path, option, value, fragile):
    model = chain_model(tmp_path / "m.onnx", fragile=fragile)
    cache = ResultCache(tmp_path / "cache")
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax", cache=cache) as plain:
        summary = plain.evaluate()
    with SensitivitySweep(model, frames(12), evalset(model), method="minmax", cache=cache,
                          **{option: value}) as changed:
        assert changed.ranges_path == plain.ranges_path
        assert changed.evaluate() != summary and changed.evaluations == 1
        assert changed.evaluate(exclude=["conv_a"]) != plain.evaluate(exclude=["conv_a"])


def test_layer_groups_by_name_prefix(tmp_path):
    import numpy as np
    from onnx import helper
    names = ["net/block_1/expand/Conv", "net/block_1/project/Conv", "net/block_1/add", "net/block_2/Conv", "head"]
    nodes, inits, previous = [], {}, "x"
    for i, name in enumerate(names):
        out = "y" if i == len(names) - 1 else f"t{i}"
        if name.endswith("add"):
            nodes.append(helper.make_node("Add", [previous, previous], [out], name=name))
        else:
            inits[f"w{i}"] = np.ones((3, 3, 1, 1), np.float32)
            nodes.append(helper.make_node("Conv", [previous, f"w{i}"], [out], name=name))
        previous = out
    model = save_model(nodes, inits, tmp_path / "g.onnx", y_shape=(1, 3, 8, 8))
    assert layer_groups(model, depth=2) == {"net/block_1": tuple(names[:3]), "net/block_2": (names[3],),
                                            "head": ("head",)}
    assert list(layer_groups(model, depth=0)) == names
    assert layer_groups(model, op_types=("Add",), depth=2) == {"net/block_1": ("net/block_1/add",)}
    with pytest.raises(SensitivityError, match="no \\['Gemm'\\] nodes"):
        layer_groups(model, op_types=("Gemm",))


def test_quantize_target_recall_on_the_shipped_model(tmp_path, capsys):
    """End to end, kept cheap: minmax calibration on 2 frames, 2 held-out frames, 7 layer groups."""
    calib, held_out = tmp_path / "calib", tmp_path / "held_out"
    calib.mkdir()
    held_out.mkdir()
    for name in ("vtest_000.jpg", "vtest_150.jpg"):
        shutil.copy(ROOT / "test" / "data" / name, calib / name)
    for name in ("vtest_300.jpg", "vtest_450.jpg"):
        shutil.copy(ROOT / "test" / "data" / name, held_out / name)
    out = tmp_path / "mixed.onnx"
    rc = main(["quantize", "--config", str(ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian.yaml"),
               "--calib", str(calib), "--method", "minmax", "--output", str(out), "--target-recall", "0.99",
               "--select-frames", str(held_out), "--group-depth", "1", "--max-float-share", "0.5",
               "--op-types", "Conv", "--candidates", "2",
               "--cache-dir", str(tmp_path / "cache"), "--report", str(tmp_path / "sens")])
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "sens.json").read_text())
    selection = report["selection"]
    assert rc == (0 if selection["reached"] else 1) and "convolutions INT8" in printed
    assert len(report["ranking"]) == 7  # FeatureExtractor + BoxPredictor_0..5
    assert (tmp_path / "sens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rank | group |" in (tmp_path / "sens.md").read_text()
    layers = read_layer_precisions(out.with_suffix(".layers.json"))
    assert sorted(layers) == sorted(selection["float_nodes"]) and set(layers.values()) <= {"fp16"}
    original = onnx.load(str(ROOT / "models" / "ssdlite_pedestrian" / "ssdlite_pedestrian_raw_nchw.onnx"))
    conv_names = {node.name for node in original.graph.node if node.op_type == "Conv"}
    assert int8_conv_share(out) == (88 - len(conv_names & set(selection["float_nodes"])), 88)
    graph = onnx.load(str(out)).graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    adds = [node for node in graph.node if node.op_type == "Add"]
    assert adds and all(producer.get(i) != "DequantizeLinear" for node in adds for i in node.input)  # float adds
