"""``trt-perception decode-pose`` on saved arrays."""

import json

import numpy as np

from trt_perception.cli import main
from trt_perception.core.decode.pose import COCO18, load_topology
from trt_perception.testing.pose_fields import random_person, render_fields


def _save(tmp_path, cmap, paf):
    np.save(tmp_path / "c.npy", cmap)
    np.save(tmp_path / "p.npy", paf)
    return ["decode-pose", "--cmap", str(tmp_path / "c.npy"), "--paf", str(tmp_path / "p.npy"),
            "--json", str(tmp_path / "out.json")]


def test_writes_skeletons_per_image_in_map_cells(tmp_path, capsys):
    rng = np.random.default_rng(4)
    people = [np.stack([random_person(rng, 30, (15, 28)), random_person(rng, 30, (42, 28))]),
              np.zeros((0, 18, 2))]
    fields = [render_fields(p, COCO18, 56, 56) for p in people]
    args = _save(tmp_path, np.stack([f[0] for f in fields]), np.stack([f[1] for f in fields]))
    assert main(args) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert [len(image["skeletons"]) for image in out["images"]] == [2, 0]
    for skeleton in out["images"][0]["skeletons"]:
        truth = people[0][0] if skeleton["keypoints"][0]["x"] < 28 else people[0][1]
        assert {k["part"] for k in skeleton["keypoints"]} == set(np.flatnonzero(~np.isnan(truth[:, 0])).tolist())
        for k in skeleton["keypoints"]:
            assert k["name"] == COCO18.parts[k["part"]]
            assert abs(k["x"] - truth[k["part"], 0]) < 0.05 and abs(k["y"] - truth[k["part"], 1]) < 0.05
            assert 0.8 < k["score"] <= 1.0
        assert 0 < skeleton["score"] <= 1
        assert all(list(pair) in COCO18.links.tolist() for pair in skeleton["links"])
    assert "2 skeleton(s)" in capsys.readouterr().out


def test_decoder_options_are_applied(tmp_path):
    cmap, paf = render_fields(random_person(np.random.default_rng(1), 30, (28, 28))[None], COCO18, 56, 56)
    args = _save(tmp_path, cmap[None], paf[None])
    assert main(args + ["--peak-threshold", "1.5"]) == 0  # no peak reaches 1.5
    assert json.loads((tmp_path / "out.json").read_text())["images"][0]["skeletons"] == []


def test_mismatches_give_clear_errors(tmp_path, capsys):
    cmap = np.zeros((2, 18, 56, 56), np.float32)
    assert main(_save(tmp_path, cmap, np.zeros((1, 42, 56, 56), np.float32))) == 2
    assert "--cmap holds 2 images but --paf holds 1" in capsys.readouterr().err
    assert main(_save(tmp_path, cmap, np.zeros((2, 40, 56, 56), np.float32))) == 2
    assert "paf must have shape [42, H, W]" in capsys.readouterr().err
    (tmp_path / "topo.json").write_text('{"keypoints": ["a", "b"], "skeleton": [[1, 2]]}')
    args = _save(tmp_path, cmap, np.zeros((2, 42, 56, 56), np.float32)) + ["--topology", str(tmp_path / "topo.json")]
    assert main(args) == 2
    assert "cmap must have shape [2, H, W] (2 parts of the topology), got [18, 56, 56]" in capsys.readouterr().err
    assert main(_save(tmp_path, cmap[0], cmap[0])) == 2
    assert "must hold a [N, channels, H, W] array" in capsys.readouterr().err
    assert main(_save(tmp_path, cmap, np.zeros((2, 42, 56, 56), np.float32)) + ["--min-parts", "0"]) == 2
    assert "min_parts must be an integer in 1..1000" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_hidden_peak_options(tmp_path, capsys):
    # two arms reach towards each other; the wrists, 2 cells apart, make one peak: the weaker wrist is
    # a hidden peak, or missing with --sigma 0
    (tmp_path / "arm.json").write_text(
        '{"keypoints": ["shoulder", "elbow", "wrist"], "skeleton": [[1, 2], [2, 3]]}')
    topology = load_topology(tmp_path / "arm.json")
    people = np.array([[[5.5, 8.0], [11.5, 12.5], [18.3, 14.2]], [[33.0, 9.5], [26.0, 17.0], [19.9, 15.4]]])
    cmap, paf = render_fields(people, topology, 30, 40, part_gain=np.array([[1.0, 1.0, 1.0], [0.9, 0.9, 0.7]]))
    wrists = {}
    for option in ([], ["--sigma", "0"]):
        args = _save(tmp_path, cmap[None], paf[None]) + ["--topology", str(tmp_path / "arm.json"), "--min-parts", "1"]
        assert main(args + option) == 0
        skeletons = json.loads((tmp_path / "out.json").read_text())["images"][0]["skeletons"]
        wrists[" ".join(option)] = sum(k["name"] == "wrist" for s in skeletons for k in s["keypoints"])
    assert wrists == {"": 2, "--sigma 0": 1}
    assert main(_save(tmp_path, cmap[None], paf[None]) + ["--sigma", "-1"]) == 2
    assert "sigma must be in [0, 10]" in capsys.readouterr().err


def test_cli_lists_every_command_with_its_own_help():
    import argparse
    import importlib

    from trt_perception.cli import TOOLS
    for command, (module, summary) in TOOLS.items():
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(f"trt_perception.tools.{module}").add_parser(subparsers)
        assert list(subparsers.choices) == [command]
        assert subparsers._choices_actions[0].help == summary, command
