"""The system plan: which perception nodes run, with which names, namespaces, parameter files and
remaps. Plain Python (no rclpy, no launch): ``launch/perception.launch.py`` (through
:mod:`~trt_perception.ros.launch_actions`) and ``trt-perception run`` (through
:mod:`~trt_perception.ros.system_runner`) both turn the same :class:`NodeSpec` list into nodes,
so the launched and the in-process system cannot disagree.

Layout, per camera namespace ``<ns>`` (e.g. ``/cam_front``) and image topic ``<image>`` (relative
to the namespace, default ``image_raw``):

* node ``<ns>/detector_node`` and/or ``<ns>/pose_node`` (or ``<ns>/perception_node``, both models
  in one process), each subscribing ``<ns>/<image>`` (``input_type: raw``) or
  ``<ns>/<image>/compressed`` (``input_type: compressed``);
* results on ``<ns>/detections`` and ``<ns>/skeletons``; each node's own outputs (``latency``,
  ``debug_image``, ``markers``) are remapped to ``<ns>/detector/...`` and ``<ns>/pose/...`` so the
  two nodes of a namespace do not share them. These are the names ``perception_node`` publishes
  by itself, so consumers see the same topics whichever way the models run.
* ``batch``: one ``/multi_camera_node`` (root namespace) runs the detector for every camera, one
  inference call per batch of frames; its ``cameras``, ``image_topic`` (and ``input_type``) are
  overrides, and it publishes each camera's ``<ns>/detections``, ``<ns>/detector/latency``, ...
  itself (the names above).

Parameter files use the ``ros__parameters`` layout; a section applies to a node when its key
matches the node's fully qualified name as rcl matches it: a key without a leading ``/`` gets one,
``/*`` stands for one namespace token or the name, ``/**`` for any number of them. So
``detector_node:`` applies only to ``/detector_node``; ``/**/detector_node:`` (what
``config/detector.yaml`` uses) to a detector_node in any namespace; ``/**:`` to every node.
Nested mappings become dotted names (``detector: {score_threshold: 0.5}`` ->
``detector.score_threshold``), as rcl flattens them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import yaml

PACKAGE = "trt_perception"


@dataclass(frozen=True)
class NodeKind:
    """An executable of the package: ``nodes/<executable>`` runs ``main`` of ``module``, which
    spins ``node_class``; ``outputs`` are the node's own topics, remapped to ``<prefix>/<topic>``.
    """

    executable: str
    module: str
    node_class: str
    prefix: str = ""
    outputs: tuple[str, ...] = ()


#: node kinds by the name the plan and the command line use
KINDS: dict[str, NodeKind] = {
    "detector": NodeKind("detector_node", "trt_perception.ros.detector_node", "DetectorNode",
                         "detector", ("latency", "debug_image", "markers")),
    "pose": NodeKind("pose_node", "trt_perception.ros.pose_node", "PoseNode",
                     "pose", ("latency", "debug_image", "markers")),
    # both models in one process; its own outputs are already detector/... and pose/...
    "shared": NodeKind("perception_node", "trt_perception.ros.shared_node", "SharedPerceptionNode"),
    # the detector of every camera in one node (one per system, not per camera), batched inference
    "batch": NodeKind("multi_camera_node", "trt_perception.ros.multi_camera_node", "MultiCameraNode",
                      "detector", ("latency", "debug_image", "markers")),
}

#: the node's image subscriptions (relative names), remapped to the camera's image topic
IMAGE_INPUTS = ("image", "image/compressed")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the plan, as ``ros2 run``/launch start it (see :meth:`ros_args`)."""

    executable: str
    name: str
    namespace: str
    params_files: tuple[str, ...]
    remaps: tuple[tuple[str, str], ...]
    #: parameter values that override the files (last wins), e.g. ``input_type``
    overrides: tuple[tuple[str, Any], ...] = ()
    package: str = PACKAGE
    kind: str = field(default="", compare=False)

    @property
    def fqn(self) -> str:
        """Fully qualified node name, e.g. ``/cam_front/detector_node``."""
        return f"{self.namespace.rstrip('/')}/{self.name}"

    def ros_args(self) -> list[str]:
        """``--ros-args`` arguments with the parameter files and remaps (not the overrides, which
        the runner passes as parameter overrides and launch as a parameter dictionary).
        """
        args = ["--ros-args"]
        for path in self.params_files:
            args += ["--params-file", path]
        for source, target in self.remaps:
            args += ["-r", f"{source}:={target}"]
        return args


def camera_namespaces(cameras: Union[str, Sequence[str]]) -> list[str]:
    """Namespaces from a comma list or sequence: ``cam_front`` -> ``/cam_front``, ``/`` or ``""``
    -> the root namespace ``""``. Raises ValueError for a bad or repeated name.
    """
    if isinstance(cameras, str):  # empty items of a comma list (a stray comma) are no cameras
        items = [i for i in cameras.split(",") if i.strip()] or [cameras]
    else:
        items = list(cameras)
    namespaces = []
    for item in (i.strip() for i in items):
        namespace = "/" + item.strip("/") if item.strip("/") else ""
        if namespace and not re.fullmatch(r"(/[A-Za-z_][A-Za-z0-9_]*)+", namespace):
            raise ValueError(f"camera namespace {item!r} is not a valid ROS namespace")
        if namespace in namespaces:
            raise ValueError(f"camera namespace {namespace or '/'!r} is listed twice")
        namespaces.append(namespace)
    if not namespaces:
        raise ValueError("no camera namespace given")
    return namespaces


def system_plan(nodes: Sequence[str], cameras: Union[str, Sequence[str]], params_files: Sequence[str],
                image_topic: str = "image_raw", input_type: Optional[str] = None) -> list[NodeSpec]:
    """The nodes of ``nodes`` (keys of :data:`KINDS`) on every camera namespace, each with all of
    ``params_files`` (sections apply by node name, see the module docstring), its image input
    remapped to ``image_topic`` (relative to the namespace; absolute only with one camera) and
    ``input_type`` (raw, compressed; None: from the parameter files) as an override.
    """
    unknown = [n for n in nodes if n not in KINDS]
    if unknown or not nodes or len(set(nodes)) < len(nodes):
        raise ValueError(f"unknown node kinds {unknown}; choose from {', '.join(KINDS)}" if unknown
                         else f"node kinds must be listed once each, got {list(nodes)}")
    if "shared" in nodes and len(nodes) > 1:
        raise ValueError("shared (perception_node) runs both models itself; do not combine it with "
                         f"{', '.join(n for n in nodes if n != 'shared')} on the same cameras")
    if "batch" in nodes and "detector" in nodes:
        raise ValueError("batch (multi_camera_node) runs the detector of every camera; do not combine it "
                         "with detector on the same cameras")
    namespaces = camera_namespaces(cameras)
    image_topic = image_topic.strip()
    if not image_topic or image_topic.endswith("/"):
        raise ValueError(f"image topic {image_topic!r} is not a topic name")
    if image_topic.startswith("/") and len(namespaces) > 1:
        raise ValueError(f"image topic {image_topic!r} is absolute: every camera would read it; give "
                         "it relative to the camera namespaces (e.g. image_raw)")
    if input_type not in (None, "raw", "compressed"):
        raise ValueError(f"input type must be raw or compressed, got {input_type!r}")
    overrides = (("input_type", input_type),) if input_type else ()
    plan = []
    if "batch" in nodes:
        if "" in namespaces:
            raise ValueError("batch (multi_camera_node) needs a namespace per camera, not the root")
        if image_topic.startswith("/"):
            raise ValueError(f"image topic {image_topic!r} is absolute; batch (multi_camera_node) reads it "
                             "relative to each camera namespace (e.g. image_raw)")
        kind = KINDS["batch"]
        plan.append(NodeSpec(kind.executable, kind.executable, "", tuple(params_files), (),
                             (("cameras", list(namespaces)), ("image_topic", image_topic)) + overrides, kind="batch"))
    for namespace in namespaces:
        for kind_name in (n for n in nodes if n != "batch"):
            kind = KINDS[kind_name]
            remaps = tuple(zip(IMAGE_INPUTS, (image_topic, image_topic + "/compressed"))) + tuple(
                (topic, f"{kind.prefix}/{topic}") for topic in kind.outputs)
            plan.append(NodeSpec(kind.executable, kind.executable, namespace, tuple(params_files),
                                 remaps, overrides, kind=kind_name))
    return plan


# ---- parameter files ----------------------------------------------------------------------------


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _sections(content: dict[str, Any], prefix: str, path: Path) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in content.items():
        name = f"{prefix}/{str(key).strip('/')}"
        if not isinstance(value, dict):
            raise ValueError(f"parameter file {path}: {name!r} holds no 'ros__parameters' mapping")
        if "ros__parameters" in value:
            if not isinstance(value["ros__parameters"], dict):
                raise ValueError(f"parameter file {path}: 'ros__parameters' of {name!r} is not a mapping")
            sections[name] = _flatten(value["ros__parameters"])
        else:  # a namespace level: cam_front: {detector_node: {ros__parameters: ...}}
            sections.update(_sections(value, name, path))
    return sections


def read_params_file(path: Union[str, Path]) -> dict[str, dict[str, Any]]:
    """``{node key: {parameter name: value}}`` of a ``ros__parameters`` YAML file, in file order.

    Keys are normalized with a leading ``/``; nested namespace levels are joined
    (``cam: {detector_node: ...}`` -> ``/cam/detector_node``). Raises ValueError naming the file
    and the problem (not YAML, a node key without a ``ros__parameters`` mapping).
    """
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(content, dict):
        raise ValueError(f"parameter file {path}: expected a mapping of node names, got {type(content).__name__}")
    return _sections(content, "", path)


def key_matches(key: str, fqn: str) -> bool:
    """Whether parameter-file node key ``key`` (normalized, leading ``/``) applies to node ``fqn``."""
    tokens = re.split(r"(/\*\*|/\*)", key)
    pattern = "".join({"/**": "(/[^/]+)*", "/*": "/[^/]+"}.get(t, re.escape(t)) for t in tokens)
    return re.fullmatch(pattern, fqn) is not None


def file_parameters(spec: NodeSpec) -> dict[str, tuple[Any, str]]:
    """The parameters ``spec``'s files give its node: name -> (value, "<file>: <key>" that set it).

    As rcl applies them: the files are merged section by section (a section keeps the place where
    its key first appeared, a later file's values win within it), then every matching section is
    applied in that order, later ones overriding earlier ones.
    """
    merged: dict[str, dict[str, tuple[Any, str]]] = {}
    for path in spec.params_files:
        for key, params in read_params_file(path).items():
            merged.setdefault(key, {}).update({name: (value, f"{path}: {key}") for name, value in params.items()})
    values: dict[str, tuple[Any, str]] = {}
    for key, params in merged.items():
        if key_matches(key, spec.fqn):
            values.update(params)
    return values


def kinds_in_files(params_files: Sequence[str]) -> list[str]:
    """The node kinds that some section of ``params_files`` names (wildcard-only sections, such as
    ``/**``, name none), in :data:`KINDS` order.
    """
    keys = [key for path in params_files for key in read_params_file(path)]
    return [name for name, kind in KINDS.items()
            if any(key.rsplit("/", 1)[-1] == kind.executable for key in keys)]


def output_namespace(topic: str) -> str:
    """The camera namespace of an output topic of this layout: ``/cam/detections`` -> ``/cam``,
    ``/cam/detector/latency`` -> ``/cam``; ``""`` for the root namespace.
    """
    parent, name = topic.rsplit("/", 1)
    for kind in KINDS.values():
        if name in kind.outputs and parent.rsplit("/", 1)[-1] == kind.prefix:
            return parent.rsplit("/", 1)[0]
    return parent


def answers(output_topic: str, input_topic: str) -> bool:
    """Whether nodes publishing ``output_topic`` read ``input_topic`` in this layout: the output's
    camera namespace contains the input topic (``/cam/image_raw``, ``/cam/image_raw/compressed``).
    """
    return input_topic.startswith(output_namespace(output_topic) + "/")
