"""``trt-perception export-trt-pose``: argument checks, the config it writes, and (with torch) the
export of a small stand-in module with trt_pose's two outputs."""

import importlib.util
import json

import numpy as np
import pytest

from trt_perception.cli import main
from trt_perception.core.decode import create_decoder
from trt_perception.core.decode.pose import COCO18, PoseDecoder, Topology
from trt_perception.core.model_config import load_model_config
from trt_perception.tools.export_trt_pose import MEAN, STD, write_model_config


def _args(tmp_path, *extra):
    return ["export-trt-pose", "--model", "resnet18_baseline_att", "--weights", str(tmp_path / "w.pth"),
            "--size", "224", "--onnx", str(tmp_path / "out.onnx"), *extra]


@pytest.mark.parametrize("change, message", [
    (["--model", "resnet50"], "invalid choice"),
    (["--size", "300"], "invalid choice"),
])
def test_argparse_refuses_unknown_models_and_sizes(tmp_path, capsys, change, message):
    args = _args(tmp_path)
    args[args.index(change[0]) + 1] = change[1]
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


def test_missing_weights_and_bad_output_name(tmp_path, capsys):
    assert main(_args(tmp_path)) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "w.pth").write_bytes(b"x")
    args = _args(tmp_path)
    args[-1] = str(tmp_path / "out.engine")
    assert main(args) == 2
    assert "--onnx must end in .onnx" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("trt_pose") is not None, reason="trt_pose is installed")
def test_missing_trt_pose_is_reported(tmp_path, capsys):
    (tmp_path / "w.pth").write_bytes(b"x")
    assert main(_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "needs torch, torchvision and trt_pose" in err and not (tmp_path / "out.onnx").exists()


def test_written_config_loads_as_a_pose_model(tmp_path):
    onnx_path = tmp_path / "pose_256.onnx"
    onnx_path.write_bytes(b"stand-in: the config loader only checks that the file exists")
    topology = Topology(("a", "b", "c"), np.array([[0, 1], [1, 2]]))
    config_path = write_model_config(onnx_path, 256, topology)
    assert config_path == tmp_path / "pose_256.yaml"
    config = load_model_config(config_path)
    assert config.task == "pose" and config.model_path == onnx_path
    assert config.input_name == "input" and config.outputs == {"cmap": "cmap", "paf": "paf"}
    pre = config.preprocess
    assert (pre.width, pre.height, pre.resize, pre.color_order, pre.layout) == (256, 256, "stretch", "rgb", "nchw")
    # ImageNet statistics of torchvision (0..1 units) times 255
    assert np.allclose(pre.mean, np.array([0.485, 0.456, 0.406]) * 255)
    assert np.allclose(pre.std, np.array([0.229, 0.224, 0.225]) * 255)
    assert (MEAN, STD) == (pre.mean, pre.std)
    decoder = create_decoder(config)
    assert isinstance(decoder, PoseDecoder) and decoder.topology.parts == ("a", "b", "c")
    assert json.loads((tmp_path / "pose_256.topology.json").read_text())["skeleton"] == [[1, 2], [2, 3]]


def test_export_of_a_stand_in_module_runs_in_onnx_runtime(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed (optional for the export tool)")
    pytest.importorskip("onnxruntime")
    from trt_perception.tools.export_trt_pose import export_onnx

    class TwoHeads(torch.nn.Module):  # trt_pose's interface: image -> (cmap, paf) at 1/4 size
        def __init__(self):
            super().__init__()
            self.cmap = torch.nn.Conv2d(3, COCO18.num_parts, 4, stride=4)
            self.paf = torch.nn.Conv2d(3, 2 * COCO18.num_links, 4, stride=4)

        def forward(self, x):
            return self.cmap(x), self.paf(x)

    onnx_path = tmp_path / "two_heads.onnx"
    diff = export_onnx(TwoHeads(), 224, onnx_path)
    assert diff < 1e-4
    import onnxruntime
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("cmap", [1, 18, 56, 56]),
                                                                 ("paf", [1, 42, 56, 56])]
