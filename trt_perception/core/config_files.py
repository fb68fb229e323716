"""Reading a configuration file whose top level is a mapping (model YAML, topology JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def read_mapping(path: Path, kind: str, loads: Callable[[str], Any], syntax: str,
                 syntax_errors: tuple[type[Exception], ...], error: type[Exception]) -> dict[str, Any]:
    """The mapping in the ``syntax`` (e.g. "YAML") file at ``path``, parsed by ``loads``.

    Raises ``error`` naming the ``kind`` of file ("model config"), the path and the problem: the file
    cannot be read, is not valid ``syntax`` (``loads`` raised one of ``syntax_errors``), or its top
    level is not a mapping.
    """
    try:
        raw = loads(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {kind} {path}: {exc.strerror or exc}") from exc
    except syntax_errors as exc:
        raise error(f"{kind} {path} is not valid {syntax}: {exc}") from exc
    if not isinstance(raw, dict):
        raise error(f"{kind} {path} must hold a {syntax} mapping, got {type(raw).__name__}")
    return raw
