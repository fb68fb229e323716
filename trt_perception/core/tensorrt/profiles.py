"""Optimization-profile shapes for a batch range.

TensorRT needs, for every network input with a dynamic dimension (``-1`` in the parsed network),
the smallest, typical and largest shape it will see (min/opt/max). This package supports a
dynamic *batch* dimension (dimension 0) only: image models have a fixed input size, and a
dynamic height or width would make the preprocessing ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from trt_perception.core.tensorrt.options import BuildOptions


class ProfileError(ValueError):
    """A model whose input shapes do not fit the requested batch range."""


@dataclass(frozen=True)
class ProfileShapes:
    """min/opt/max shape of one input in an optimization profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def batch_profile(inputs: Mapping[str, Sequence[int]], options: BuildOptions) -> list[ProfileShapes]:
    """Profile shapes for the network ``inputs`` (name -> dims, ``-1`` = dynamic).

    Returns ``[]`` when every input is static (no profile needed). A static batch ``b`` accepts
    the default batch range 1..1 or exactly ``b..b``; a dynamic batch takes the range from
    ``options``. Raises :class:`ProfileError` for a dynamic non-batch dimension or a batch range a
    static model cannot serve.
    """
    shapes = []
    wanted = (options.min_batch, options.opt_batch, options.max_batch)
    for name, dims in inputs.items():
        dims = tuple(int(d) for d in dims)
        other_dynamic = [i for i, d in enumerate(dims) if d < 0 and i > 0]
        if other_dynamic:
            raise ProfileError(f"input {name!r} has shape {list(dims)} with dynamic dimension(s) "
                               f"{other_dynamic}; only the batch dimension (0) may be dynamic: "
                               "export the model with a fixed input size")
        if not dims or dims[0] >= 0:
            batch = dims[0] if dims else 1
            if wanted not in ((1, 1, 1), (batch, batch, batch)):
                raise ProfileError(f"input {name!r} has a fixed batch of {batch} (shape {list(dims)}), "
                                   f"so it cannot be built for batch {options.min_batch}..{options.max_batch}: "
                                   "re-export the model with a dynamic batch dimension, or drop the batch options")
            continue
        rest = dims[1:]
        shapes.append(ProfileShapes(name, (options.min_batch, *rest), (options.opt_batch, *rest),
                                    (options.max_batch, *rest)))
    return shapes
