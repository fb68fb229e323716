"""The system plan behind launch/*.launch.py and `trt-perception run`: executables, parameter
files, namespaces and remaps, checked against the real nodes; the launch files themselves where
launch_ros is installed; the run command end to end."""

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from harness import LifecycleClient, wait_for
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header
from test_pose_node import model_config, people  # noqa: F401 - pytest fixtures (a pose model)
from vision_msgs.msg import Detection2DArray

from trt_perception.ros.parameters import plain
from trt_perception.ros.system import (
    KINDS,
    answers,
    camera_namespaces,
    file_parameters,
    kinds_in_files,
    output_namespace,
    read_params_file,
    system_plan,
)
from trt_perception.ros.system_runner import InProcessSystem, SystemStartError, node_class

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"detector": ROOT / "config" / "detector.yaml", "pose": ROOT / "config" / "pose.yaml",
          "shared": ROOT / "config" / "perception.yaml", "batch": ROOT / "config" / "multi_camera.yaml"}
ALL_FILES = [str(path) for path in CONFIG.values()]
#: what consumers see per camera namespace, whichever way the models run
OUTPUTS = {"detections", "skeletons", "detector/latency", "pose/latency", "detector/debug_image",
           "pose/debug_image", "detector/markers", "pose/markers"}


def write_yaml(path, text):
    path.write_text(text)
    return str(path)


# ---- the launch files (need launch_ros) ---------------------------------------------------------

def launch_modules():
    """Every launch file as a module; skips without launch_ros or an installed package."""
    pytest.importorskip("launch_ros", reason="launch_ros has no pip wheel here; on a ROS 2 install (or with "
                                             "../shared/ros_cli/install.sh) these tests build every launch file")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    try:
        share = Path(get_package_share_directory("trt_perception"))
    except PackageNotFoundError:
        share = None
    if share is None or not (share / "config" / "detector.yaml").is_file():  # setup_env.sh: messages only
        pytest.skip("trt_perception is not installed in an ament prefix (colcon build, source install/setup.bash)")
    modules = {}
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        spec = importlib.util.spec_from_file_location(path.name.replace(".", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[path.name.removesuffix(".launch.py")] = module
    return modules


def visit(description, **arguments):
    """The actions a launch description produces with ``arguments`` (declared defaults apply)."""
    from launch import LaunchContext

    context = LaunchContext()
    context.launch_configurations.update(arguments)
    actions = []
    for entity in description.entities:
        actions += entity.visit(context) or []
    return actions


def test_launch_files_build_their_nodes_from_the_plan():
    modules = launch_modules()
    from launch_ros.actions import LifecycleNode as LaunchedLifecycleNode

    expected = {"detector": ["detector_node"], "pose": ["pose_node"],
                "perception": ["detector_node", "detector_node"],
                "perception_shared": ["perception_node", "perception_node"]}
    for name, module in modules.items():
        actions = visit(module.generate_launch_description(), cameras="/cam_a,/cam_b")
        nodes = [a for a in actions if isinstance(a, LaunchedLifecycleNode)]
        assert [n.node_executable for n in nodes] == expected[name], name


def test_every_launch_file_declares_the_common_arguments_with_descriptions():
    modules = launch_modules()
    from trt_perception.ros.launch_actions import COMMON_ARGUMENTS

    for name, module in modules.items():
        declared = {a.name: a for a in module.generate_launch_description().get_launch_arguments()}
        assert set(COMMON_ARGUMENTS) | {"params_file", "namespace", "image_topic"} <= set(declared), name
        assert all(a.description and "no description" not in a.description for a in declared.values()), name


def test_a_wrong_argument_value_fails_with_the_allowed_values():
    description = launch_modules()["detector"].generate_launch_description()
    with pytest.raises(Exception, match="input_type.*(raw|compressed)"):
        visit(description, input_type="jpeg")


def test_a_missing_params_file_fails_the_launch_with_its_path(tmp_path):
    missing = str(tmp_path / "typo.yaml")
    for name, module in launch_modules().items():
        argument = "detector_params" if name == "perception" else "params_file"
        with pytest.raises(FileNotFoundError, match=re.escape(missing)):
            visit(module.generate_launch_description(), **{argument: missing})


def test_launch_arguments_become_parameter_overrides_and_namespaces(monkeypatch):
    modules = launch_modules()
    from trt_perception.ros import launch_actions

    specs = []
    monkeypatch.setattr(launch_actions, "lifecycle_actions", lambda spec, autostart: specs.append(spec) or [])
    visit(modules["detector"].generate_launch_description(), input_type="compressed", model_config="/m/ssd.yaml",
          backend="onnxruntime", strict_parameters="true", namespace="/cam_x")
    (spec,) = specs
    assert spec.fqn == "/cam_x/detector_node"
    assert dict(spec.overrides) == {"input_type": "compressed", "model_config": "/m/ssd.yaml",
                                    "backend": "onnxruntime", "strict_parameters": True}
    specs.clear()
    visit(modules["perception_shared"].generate_launch_description(), model_config="/m/d.yaml",
          pose_model_config="/m/p.yaml", namespace="robot", cameras="/front,rear")
    assert [s.fqn for s in specs] == ["/robot/front/perception_node", "/robot/rear/perception_node"]
    assert dict(specs[0].overrides) == {"detector.model_config": "/m/d.yaml", "pose.model_config": "/m/p.yaml"}
    specs.clear()
    visit(modules["perception"].generate_launch_description(), model_config="/m/d.yaml",
          pose_model_config="/m/p.yaml", enable_pose="true")
    assert [dict(s.overrides) for s in specs] == [{"model_config": "/m/d.yaml"}, {"model_config": "/m/p.yaml"}]


def test_batch_starts_one_multi_camera_node_with_the_model_arguments(monkeypatch):
    """perception.launch.py batch:=true failed with KeyError 'batch' (no model arguments for the kind)."""
    modules = launch_modules()
    from trt_perception.ros import launch_actions

    specs = []
    monkeypatch.setattr(launch_actions, "lifecycle_actions", lambda spec, autostart: specs.append(spec) or [])
    visit(modules["perception"].generate_launch_description(), batch="true", cameras="/cam_a,/cam_b",
          model_config="/m/d.yaml", pose_model_config="/m/p.yaml", enable_pose="true", input_type="compressed")
    assert [s.fqn for s in specs] == ["/multi_camera_node", "/cam_a/pose_node", "/cam_b/pose_node"]
    overrides = dict(specs[0].overrides)
    assert overrides["model_config"] == "/m/d.yaml" and overrides["input_type"] == "compressed"
    assert list(overrides["cameras"]) == ["/cam_a", "/cam_b"]
    assert [dict(s.overrides)["model_config"] for s in specs[1:]] == ["/m/p.yaml", "/m/p.yaml"]


def test_autostart_activates_once_and_only_after_the_first_configure():
    modules = launch_modules()
    from launch.actions import RegisterEventHandler

    for name, module in modules.items():
        handlers = [a.event_handler for a in visit(module.generate_launch_description())
                    if isinstance(a, RegisterEventHandler)]
        assert handlers and all(h.handle_once for h in handlers), name
        assert not [a for a in visit(module.generate_launch_description(), autostart="false")
                    if isinstance(a, RegisterEventHandler)], name


# ---- the plan: executables and parameter files ------------------------------------------------


def test_every_executable_exists_is_installed_and_runs_its_node_class():
    installed = re.search(r"install\(PROGRAMS([^)]*)\)", (ROOT / "CMakeLists.txt").read_text()).group(1).split()
    for name, kind in KINDS.items():
        script = ROOT / "nodes" / kind.executable
        assert script.is_file() and os.access(script, os.X_OK), script
        assert f"from {kind.module} import main" in script.read_text()
        assert f"nodes/{kind.executable}" in installed
        cls = node_class(name)
        assert issubclass(cls, LifecycleNode) and cls.NODE_NAME == kind.executable


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cameras", ["/", "/cam_front", "/car/cam_rear"])
def test_each_parameter_file_applies_whole_to_its_node_in_any_namespace(kind, cameras):
    if kind == "batch" and cameras == "/":   # multi_camera_node needs a namespace per camera
        with pytest.raises(ValueError, match="not the root"):
            system_plan([kind], cameras, ALL_FILES)
        return
    (spec,) = system_plan([kind], cameras, ALL_FILES)
    own = {name for params in read_params_file(CONFIG[kind]).values() for name in params}
    assert set(file_parameters(spec)) == own     # the other files' sections do not apply
    assert kinds_in_files([str(CONFIG[kind])]) == [kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_parameter_in_the_files_is_declared_and_reaches_the_node(ros, kind):
    system = InProcessSystem(system_plan([kind], "/cam_front,/cam_rear", ALL_FILES), ros.context)
    try:
        for spec, node in system.nodes:
            given = file_parameters(spec)
            assert given, spec.fqn
            overrides = dict(spec.overrides)   # multi_camera_node: cameras and image_topic from the plan
            for name, (value, origin) in given.items():
                want = overrides.get(name, value)
                assert plain(node.get_parameter(name).value) == want, f"{spec.fqn} {name} from {origin}"
    finally:
        system.close()


def test_a_misspelt_or_mistyped_parameter_stops_the_start(ros, tmp_path):
    typo = write_yaml(tmp_path / "typo.yaml", "/**/detector_node:\n  ros__parameters:\n    score_treshold: 0.3\n")
    with pytest.raises(SystemStartError,
                       match=r"/cam/detector_node .*score_treshold \(.*typo.yaml: /\*\*/detector_node\)"):
        InProcessSystem(system_plan(["detector"], "/cam", [str(CONFIG["detector"]), typo]), ros.context)
    mistyped = write_yaml(tmp_path / "type.yaml", "/**:\n  ros__parameters:\n    qos_depth: deep\n")
    with pytest.raises(SystemStartError, match="/cam/detector_node.*qos_depth"):
        InProcessSystem(system_plan(["detector"], "/cam", [mistyped]), ros.context)


def test_section_matching_and_precedence_agree_with_rcl(ros, tmp_path):
    first = write_yaml(tmp_path / "first.yaml", """
/**/detector_node:
  ros__parameters: {a: 1, nested: {b: 1}}
/**:
  ros__parameters: {a: 2, c: 1}
detector_node:
  ros__parameters: {d: 1}
/*/detector_node:
  ros__parameters: {e: 1}
cam:
  detector_node:
    ros__parameters: {c: 5}
/other_node:
  ros__parameters: {f: 1}
""")
    second = write_yaml(tmp_path / "second.yaml", "/**:\n  ros__parameters: {a: 3}\n")
    for files in ([first], [first, second], [second, first]):
        for namespace in ("", "/cam", "/car/cam"):
            (spec,) = system_plan(["detector"], namespace, files)
            rcl = Node(spec.name, namespace=spec.namespace, context=ros.context, cli_args=spec.ros_args(),
                       automatically_declare_parameters_from_overrides=True)
            try:
                applied = {n: p.value for n, p in rcl.get_parameters_by_prefix("").items()
                           if n not in ("use_sim_time", "start_type_description_service")}
            finally:
                rcl.destroy_node()
            assert {n: v for n, (v, _) in file_parameters(spec).items()} == applied, (files, namespace)


# ---- the plan: names, namespaces and remaps on running nodes ---------------------------------


def node_topics(node, spec):
    """The topics ``node`` publishes and subscribes, without the infrastructure ones."""
    def names(pairs):
        return {name for name, _ in pairs if not name.endswith(("/transition_event", "/rosout", "/parameter_events"))
                and name not in ("/rosout", "/parameter_events", "/diagnostics")}
    return (names(node.get_publisher_names_and_types_by_node(spec.name, spec.namespace or "/")),
            names(node.get_subscriber_names_and_types_by_node(spec.name, spec.namespace or "/")))


#: CPU backend and every optional output on, and the test pose model, per layout
EXTRA = {"single": """
/**:
  ros__parameters: {{backend: onnxruntime, threads: 1, publish_debug_image: true, publish_markers: true}}
/**/pose_node:
  ros__parameters: {{model_config: {model}}}
""", "shared": """
/**/perception_node:
  ros__parameters:
    backend: onnxruntime
    threads: 1
    detector: {{publish_debug_image: true, publish_markers: true}}
    pose: {{publish_debug_image: true, publish_markers: true, model_config: {model}}}
"""}


@pytest.mark.parametrize("nodes, layout", [(["detector", "pose"], "single"), (["shared"], "shared")])
def test_running_nodes_use_exactly_the_planned_topics(ros, tmp_path, model_config, nodes, layout):  # noqa: F811 - fixture
    extra = write_yaml(tmp_path / "extra.yaml", EXTRA[layout].format(model=model_config))
    plan = system_plan(nodes, f"/topics_{layout}",  # a namespace of its own: graph look-ups go by name
                       [str(CONFIG[kind]) for kind in nodes] + [extra])
    system = InProcessSystem(plan, ros.context)
    try:
        assert system.start() == []
        published, subscribed = set(), set()

        def collect():
            published.clear(), subscribed.clear()
            for spec, node in system.nodes:
                pubs, subs = node_topics(node, spec)
                published.update(pubs), subscribed.update(subs)
            return published == {f"/topics_{layout}/{t}" for t in OUTPUTS}
        assert wait_for(collect, timeout=10), published
        assert subscribed == {f"/topics_{layout}/image_raw"}
    finally:
        system.close()


def test_plan_layout_and_its_checks():
    (detector, pose) = system_plan(["detector", "pose"], "cam_front", ALL_FILES, input_type="compressed")
    assert (detector.fqn, pose.fqn) == ("/cam_front/detector_node", "/cam_front/pose_node")
    assert dict(detector.remaps) == {"image": "image_raw", "image/compressed": "image_raw/compressed",
                                     "latency": "detector/latency", "debug_image": "detector/debug_image",
                                     "markers": "detector/markers"}
    assert detector.overrides == (("input_type", "compressed"),)
    assert system_plan(["shared"], "/", ALL_FILES)[0].remaps == (("image", "image_raw"),
                                                                  ("image/compressed", "image_raw/compressed"))
    assert camera_namespaces("front, /rear/,/") == ["/front", "/rear", ""]
    assert output_namespace("/cam/detector/latency") == "/cam" == output_namespace("/cam/detections")
    assert output_namespace("/detections") == ""
    assert answers("/cam/pose/latency", "/cam/image_raw/compressed")
    assert not answers("/cam/detections", "/cam2/image_raw")
    for args, problem in [((["lidar"], "/cam"), "unknown node kinds"),
                          ((["detector", "detector"], "/cam"), "once each"),
                          ((["shared", "pose"], "/cam"), "runs both models"),
                          ((["detector"], "/a,/a"), "listed twice"),
                          ((["detector"], "/a b"), "not a valid ROS namespace")]:
        with pytest.raises(ValueError, match=problem):
            system_plan(*args, ALL_FILES)
    with pytest.raises(ValueError, match="absolute"):
        system_plan(["detector"], "/a,/b", ALL_FILES, image_topic="/camera/image_raw")
    with pytest.raises(ValueError, match="raw or compressed"):
        system_plan(["detector"], "/a", ALL_FILES, input_type="h264")


def test_a_params_file_without_ros_parameters_is_named(tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", "detector_node:\n  score_threshold: 0.4\n")
    with pytest.raises(ValueError, match=r"bad.yaml: '/detector_node/score_threshold' holds no 'ros__parameters'"):
        read_params_file(bad)


# ---- trt-perception run ------------------------------------------------------------------------


def run_command(*args):
    return subprocess.Popen([sys.executable, "-m", "trt_perception.cli", "run", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_run_starts_the_plan_on_two_cameras_and_stops_on_ctrl_c(ros, tmp_path):
    cpu = write_yaml(tmp_path / "cpu.yaml", "/**:\n  ros__parameters: {backend: onnxruntime, threads: 1}\n")
    process = run_command("--params", str(CONFIG["detector"]), "--params", cpu, "--cameras", "/cam_a,/cam_b",
                          "--input-type", "compressed")
    try:
        states = [LifecycleClient(ros, f"cam_{c}/detector_node") for c in "ab"]
        assert wait_for(lambda: all(s.state() == "active" for s in states), timeout=30)
        got = {c: [] for c in "ab"}
        for c in "ab":
            ros.node.create_subscription(Detection2DArray, f"/cam_{c}/detections", got[c].append, 10)
        images = ros.node.create_publisher(CompressedImage, "/cam_b/image_raw/compressed", qos_profile_sensor_data)
        ok, jpeg = cv2.imencode(".jpg", cv2.imread(str(ROOT / "test" / "data" / "vtest_150.jpg")))
        msg = CompressedImage(header=Header(frame_id="cam_b_optical"), format="jpeg", data=jpeg.tobytes())
        msg.header.stamp.sec = 7
        assert wait_for(lambda: (images.publish(msg), bool(got["b"]))[1], timeout=15, period=0.2)
        assert got["b"][0].header.frame_id == "cam_b_optical" and got["b"][0].detections
        assert not got["a"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "/cam_a/detector_node: active" in out and "/cam_b/detector_node: active" in out


def test_run_refuses_a_bad_plan_with_the_reason(tmp_path):
    typo = write_yaml(tmp_path / "typo.yaml", "/**/detector_node:\n  ros__parameters:\n    scor_threshold: 0.3\n")
    for args, problem in [(["--params", typo], "scor_threshold"),
                          (["--nodes", "shared,detector"], "runs both models"),
                          (["--params", write_yaml(tmp_path / "none.yaml", "/**:\n  ros__parameters: {threads: 1}\n")],
                           "choose the nodes with --nodes")]:
        process = run_command(*args)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 1 and problem in err, (args, err)
