"""``trt-perception run``: the nodes of ``launch/perception.launch.py`` in this process, no launch
install needed.

The same system plan as the launch file (:mod:`trt_perception.ros.system`): the chosen nodes on
every camera namespace, the same parameter files (``ros__parameters`` layout, ``/**`` wildcards),
namespaces and remaps, then configure -> activate (``--no-activate``: left unconfigured, like
``autostart:=false``). Runs until Ctrl-C / SIGTERM. Exit status 1 when the plan cannot be started
or a node fails its transitions (the others keep running until stopped).
"""

from __future__ import annotations

import argparse
import os
import sys

from trt_perception.ros.resources import share_dir
from trt_perception.ros.system import KINDS, kinds_in_files, system_plan
from trt_perception.tools.ros_env import apply_local_defaults, frame_transport_profile


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register the ``run`` subcommand and its options on ``subparsers`` (sets ``func`` to :func:`run`)."""
    parser = subparsers.add_parser(
        "run", help="start the perception nodes in this process (what perception.launch.py starts)",
        description="Start the perception nodes of launch/perception.launch.py in this process, with "
                    "the same parameter files, namespaces and remaps, and drive them to active.")
    parser.add_argument("--params", action="append", default=[], metavar="FILE",
                        help="ros__parameters YAML, repeatable (later files win); default "
                             "config/detector.yaml")
    parser.add_argument("--nodes", metavar="LIST",
                        help=f"comma list of {', '.join(KINDS)} (detector_node, pose_node, or "
                             "perception_node: both models in one process; default: the nodes the "
                             "parameter files have a section for)")
    parser.add_argument("--cameras", default="/camera", metavar="LIST",
                        help="comma list of camera namespaces, one set of nodes each (default /camera)")
    parser.add_argument("--image-topic", default="image_raw", metavar="TOPIC",
                        help="image topic relative to each camera namespace (default image_raw; "
                             "compressed input reads <topic>/compressed)")
    parser.add_argument("--input-type", choices=("raw", "compressed"),
                        help="override the files' input_type (default: as the files say)")
    parser.add_argument("--no-activate", action="store_true",
                        help="leave the nodes unconfigured (like autostart:=false) for ros2 lifecycle "
                             "or a lifecycle manager")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``trt-perception run`` with the parsed ``args``; returns the process exit status."""
    params = args.params or [str(share_dir() / "config" / "detector.yaml")]
    try:
        nodes = [n.strip() for n in args.nodes.split(",")] if args.nodes else kinds_in_files(params)
        if not nodes:
            raise ValueError(f"no node section in {', '.join(params)}; choose the nodes with --nodes")
        plan = system_plan(nodes, args.cameras, params, args.image_topic, args.input_type)
    except ValueError as exc:
        print(f"trt-perception run: error: {exc}", file=sys.stderr)
        return 1
    apply_local_defaults()
    os.environ.update(frame_transport_profile(str(share_dir() / "config")))
    from rclpy.executors import ExternalShutdownException
    from rclpy.utilities import get_default_context  # after the environment defaults

    from trt_perception.ros.session import rclpy_session
    from trt_perception.ros.system_runner import InProcessSystem, SystemStartError

    failed: list[str] = []
    with rclpy_session([]):  # the command line holds no ROS arguments (rcl would read /a:=/b as a remap)
        try:
            system = InProcessSystem(plan, get_default_context())
        except SystemStartError as exc:
            print(f"trt-perception run: error: {exc}", file=sys.stderr)
            return 1
        try:
            if not args.no_activate:
                failed = system.start()
            for spec, node in system.nodes:
                state = "failed (see its log)" if spec.fqn in failed else (
                    "unconfigured" if args.no_activate else "active")
                print(f"{spec.fqn}: {state}", flush=True)
            system.executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            system.close()
    return 1 if failed else 0
