"""Readable reports of a build: ONNX parse errors with node names, and DLA layer placement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union


@dataclass(frozen=True)
class ParseProblem:
    """One error of TensorRT's ONNX parser.

    ``node_index``: index of the failing node in the ONNX graph, ``-1`` when the error belongs to
    no node. ``node_name``/``node_operator``: as the parser reports them (TensorRT 10), empty
    when it does not (TensorRT 8.6; then the ONNX graph supplies them).
    """

    description: str
    node_index: int = -1
    node_name: str = ""
    node_operator: str = ""
    code: str = ""


def onnx_nodes(model_path: Union[str, Path]) -> list[tuple[str, str]]:
    """(name, op_type) of every node of an ONNX graph, by node index (weights not loaded)."""
    import onnx
    model = onnx.load(str(model_path), load_external_data=False)
    return [(node.name, node.op_type) for node in model.graph.node]


def describe_parse_errors(model_name: str, problems: Sequence[ParseProblem],
                          nodes: Sequence[tuple[str, str]] = ()) -> str:
    """A message listing every parse error with its node's index, name and operator.

    ``nodes`` (from :func:`onnx_nodes`) fills in names and operators the parser did not give.
    """
    lines = [f"TensorRT could not parse {model_name} ({len(problems)} error{'s' * (len(problems) != 1)}):"]
    for problem in problems:
        name, operator = problem.node_name, problem.node_operator
        if 0 <= problem.node_index < len(nodes):
            name = name or nodes[problem.node_index][0]
            operator = operator or nodes[problem.node_index][1]
        if problem.node_index >= 0:
            where = f"node {problem.node_index} {name!r}" + (f" ({operator})" if operator else "")
        else:
            where = "model"
        code = f" [{problem.code}]" if problem.code else ""
        lines.append(f"  {where}{code}: {problem.description}")
    return "\n".join(lines)


@dataclass(frozen=True)
class LayerPlacement:
    """Where one network layer runs: ``device`` is ``"DLA"`` or ``"GPU"``."""

    name: str
    layer_type: str
    device: str


@dataclass(frozen=True)
class DlaReport:
    """Layer placement of a DLA build (which layers fell back to the GPU)."""

    dla_core: int
    layers: list[LayerPlacement] = field(default_factory=list)

    @property
    def fallback(self) -> list[LayerPlacement]:
        """Layers that run on the GPU although the build targets the DLA."""
        return [layer for layer in self.layers if layer.device != "DLA"]

    def format(self) -> str:
        """E.g. ``DLA core 0: 88 of 90 layers on the DLA, 2 fall back to the GPU:`` + one line each."""
        on_dla = len(self.layers) - len(self.fallback)
        head = f"DLA core {self.dla_core}: {on_dla} of {len(self.layers)} layers on the DLA"
        if not self.fallback:
            return head + ", none falls back to the GPU"
        lines = [head + f", {len(self.fallback)} fall back to the GPU:"]
        lines += [f"  {layer.name} ({layer.layer_type})" for layer in self.fallback]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values: DLA core, layer count and the layers that fell back to the GPU."""
        return {"dla_core": self.dla_core, "layers": len(self.layers),
                "gpu_fallback": [{"name": layer.name, "type": layer.layer_type} for layer in self.fallback]}
