"""Results of slow measurements (activation ranges, sensitivity sweeps) cached on disk as JSON.

An entry is named by the SHA-256 of the canonical JSON of its *recipe* (a dict of everything that
produced the result: model content hash, frame digest, settings), and stores the recipe next to
the value; a lookup whose stored recipe differs is a miss. Files are written atomically, so an
interrupted run leaves complete entries or none. Default directory: ``$TRT_PERCEPTION_CACHE/precision``
or ``~/.cache/trt_perception/precision``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np

from trt_perception.core.io.atomic_write import atomic_write_text


def default_precision_cache_dir() -> Path:
    """``$TRT_PERCEPTION_CACHE/precision`` if set, else ``~/.cache/trt_perception/precision``."""
    env = os.environ.get("TRT_PERCEPTION_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "trt_perception") / "precision"


def recipe_digest(recipe: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``recipe``."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tensors_digest(tensors: Iterable[np.ndarray]) -> str:
    """Hex SHA-256 over the dtype, shape and bytes of each tensor in turn (identifies frame sets)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = np.ascontiguousarray(tensor)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class ResultCache:
    """A directory of ``<kind>.<digest 16 hex>.json`` entries; ``directory=None`` disables caching."""

    def __init__(self, directory: Optional[Union[str, Path]]) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None

    def path(self, kind: str, recipe: Mapping[str, Any]) -> Optional[Path]:
        """The cache file of ``kind`` for ``recipe`` (keyed by its digest); None when caching is off."""
        if self.directory is None:
            return None
        return self.directory / f"{kind}.{recipe_digest(recipe)[:16]}.json"

    def get(self, kind: str, recipe: Mapping[str, Any]) -> Optional[Any]:
        """The stored value for ``recipe``, or None (missing, unreadable, other recipe)."""
        path = self.path(kind, recipe)
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("recipe") != json.loads(json.dumps(recipe)):
            return None
        return entry.get("value")

    def put(self, kind: str, recipe: Mapping[str, Any], value: Any) -> None:
        """Store ``value`` (JSON-serializable; NaN allowed) for ``recipe``, atomically."""
        path = self.path(kind, recipe)
        if path is not None:
            atomic_write_text(path, json.dumps({"recipe": recipe, "value": value}, indent=1) + "\n")
