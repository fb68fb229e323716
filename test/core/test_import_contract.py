"""The layering of ``trt_perception.core``, read from the source with :mod:`ast` (nothing imported):

* ``core`` never imports ``rclpy`` (nor any ROS package): the nodes are thin layers over it;
* ``core.cuda`` (CUDA plumbing) imports nothing of ``core.gpu``, ``core.tensorrt``, ``core.backends``;
* no import cycle, neither between modules nor between the parts of ``core`` (its subpackages and
  top-level modules), counting imports inside functions and under ``TYPE_CHECKING`` too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "trt_perception"
CORE = PACKAGE_ROOT / "core"
ROS_PACKAGES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "vision_msgs", "visualization_msgs",
                "diagnostic_msgs", "builtin_interfaces", "launch", "launch_ros", "trt_perception.msg",
                "trt_perception.ros")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from X import y`` gives X and X.y)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


CORE_MODULES = {module_name(path): path for path in sorted(CORE.rglob("*.py"))}
GRAPH = {name: {imp for imp in imports_of(path) if imp in CORE_MODULES and imp != name}
         for name, path in CORE_MODULES.items()}


def part(module: str) -> str:
    """``trt_perception.core.cuda.device`` -> ``cuda``; a top-level module of core is its own part."""
    rest = module.split(".")[2:]
    return rest[0] if rest else "__init__"


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a path [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return []


def test_the_walk_sees_the_package() -> None:
    assert "trt_perception.core.cuda.device" in CORE_MODULES
    assert "trt_perception.core.cuda.device" in GRAPH["trt_perception.core.gpu.gpu_preprocess"]


@pytest.mark.parametrize("module", sorted(CORE_MODULES))
def test_core_never_imports_ros(module: str) -> None:
    ros = sorted(imp for imp in imports_of(CORE_MODULES[module])
                 if any(imp == p or imp.startswith(p + ".") for p in ROS_PACKAGES))
    assert not ros, f"{module} imports {ros}"


def test_cuda_imports_nothing_of_gpu_tensorrt_backends() -> None:
    forbidden = ("gpu", "tensorrt", "backends")
    bad = sorted(f"{module} -> {imp}" for module in GRAPH if part(module) == "cuda"
                 for imp in GRAPH[module] if part(imp) in forbidden)
    assert not bad, bad


def test_no_import_cycle_between_modules() -> None:
    cycle = find_cycle(GRAPH)
    assert not cycle, " -> ".join(cycle)


def test_no_import_cycle_between_the_parts_of_core() -> None:
    parts: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        parts.setdefault(part(module), set()).update(part(t) for t in targets if part(t) != part(module))
    parts.pop("__init__", None)
    cycle = find_cycle(parts)
    assert not cycle, " -> ".join(cycle)


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
