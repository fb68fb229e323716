"""The package builds with colcon in a throwaway ROS 2 workspace and installs what ros2 launch/run need."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def test_colcon_build_installs_a_findable_package(tmp_path):
    colcon = shutil.which("colcon", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if colcon is None or shutil.which("cmake") is None:
        pytest.skip("colcon or cmake is not installed")
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the package's files")
    src = tmp_path / "ws" / "src" / "trt_perception"
    for name in tracked_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    env = dict(os.environ)
    if not env.get("AMENT_PREFIX_PATH"):  # pip-installed ROS: the virtual environment is the prefix
        env["AMENT_PREFIX_PATH"] = sys.prefix
    env["CMAKE_PREFIX_PATH"] = env["AMENT_PREFIX_PATH"]
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    result = subprocess.run(
        [colcon, "build", "--base-paths", "src", "--event-handlers", "console_cohesion-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path / "ws", env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "vision_msgs" not in result.stdout.split("Summary")[-1], "the vendored vision_msgs must be ignored"

    prefix = tmp_path / "ws" / "install" / "trt_perception"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "trt_perception").is_file()
    share = prefix / "share" / "trt_perception"
    for rel in ["package.xml", "launch/detector.launch.py", "launch/pose.launch.py", "config/detector.yaml",
                "config/pose.yaml", "config/perception.yaml", "models/trt_pose/human_pose.json",
                "models/ssdlite_pedestrian/ssdlite_pedestrian.yaml",
                "models/ssdlite_pedestrian/ssdlite_pedestrian_raw_nchw.onnx"]:
        assert (share / rel).is_file(), rel
    for executable in ["detector_node", "pose_node", "perception_node"]:
        path = prefix / "lib" / "trt_perception" / executable
        assert path.is_file() and os.access(path, os.X_OK), executable
    site = next(prefix.glob("lib/python3*/site-packages/trt_perception"))
    assert (site / "msg" / "_skeleton2_d_array.py").is_file()
    assert (site / "core" / "pipeline.py").is_file() and (site / "ros" / "detector_node.py").is_file()
    # the installed tree imports: messages, core and node, with the workspace's own python path
    check = subprocess.run(
        [sys.executable, "-c", "import trt_perception.msg, trt_perception.ros.detector_node, sys; "
         "import trt_perception.ros.shared_node; "
         "import trt_perception; print(trt_perception.__file__)"],
        env={**env, "PYTHONPATH": str(site.parent)}, cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert str(site) in check.stdout
