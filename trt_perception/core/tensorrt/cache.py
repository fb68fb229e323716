"""The engine cache: serialized TensorRT engines on disk, keyed by everything that shapes them.

A TensorRT engine only runs with the TensorRT version and the GPU model (compute capability) it
was built with, and it bakes in the precision, DLA core, batch profile and build options. The
:class:`EngineKey` holds all of them plus the SHA-256 of the model file; its digest names the
cache entry, so a change of any field (a TensorRT upgrade, another GPU, another precision) looks
for another file and rebuilds, and an old engine is never picked up.

Layout of the cache directory (default ``$TRT_PERCEPTION_CACHE`` or
``~/.cache/trt_perception/engines``), one entry per key::

    <model stem>.<precision>[.dla<N>].<digest 16 hex>.engine       the serialized engine
    <model stem>.<precision>[.dla<N>].<digest 16 hex>.engine.json  sidecar: key fields + SHA-256
    <model stem>.<precision>[.dla<N>].<digest 16 hex>.lock         build lock (empty, kept)

An entry is used only when its sidecar holds exactly the expected key fields (else *foreign*)
and the engine file has the recorded size and SHA-256 (else *corrupt*). Files are written
atomically (engine first, sidecar last), and builds of one key are serialized by an exclusive
``fcntl`` lock on the lock file: a second process waiting for it finds the first one's engine
and does not build again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.io.atomic_write import atomic_write_bytes, atomic_write_text
from trt_perception.core.tensorrt.options import BuildOptions

CACHE_ENV = "TRT_PERCEPTION_CACHE"
SIDECAR_FORMAT = 1
PathLike = Union[str, "os.PathLike[str]"]


class EngineCacheError(RuntimeError):
    """No usable engine in the cache and building is not allowed (or the cache is unusable)."""


def default_cache_dir() -> Path:
    """``$TRT_PERCEPTION_CACHE`` if set, else ``~/.cache/trt_perception/engines``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trt_perception" / "engines"


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything that decides whether a serialized engine can be used (see module docstring).

    ``model_name`` (the model file stem) only makes file names readable; the content hash
    ``model_sha256`` is what identifies the model. ``platform`` is the CPU architecture
    (``aarch64`` on the car), since plans are not portable between platforms either.
    """

    model_name: str
    model_sha256: str
    tensorrt_version: str
    gpu: GpuIdentity
    options: BuildOptions
    platform: str = field(default_factory=platform.machine)

    @classmethod
    def for_model(cls, model_path: PathLike, tensorrt_version: str, gpu: GpuIdentity,
                  options: BuildOptions) -> "EngineKey":
        """Key of ``model_path`` (hashed now) for this TensorRT version, GPU and options."""
        path = Path(model_path)
        return cls(path.stem, file_sha256(path), tensorrt_version, gpu, options)

    def fields(self) -> dict[str, Any]:
        """All fields as plain JSON values (what the sidecar stores and compares)."""
        return {
            "model_name": self.model_name,
            "model_sha256": self.model_sha256,
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu.name,
            "compute_capability": self.gpu.compute_capability,
            "platform": self.platform,
            "options": self.options.key_fields(),
        }

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the canonical JSON of :meth:`fields`."""
        canonical = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def entry_name(self) -> str:
        """File name stem of this key's cache entry."""
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model_name) or "model"
        dla = f".dla{self.options.dla_core}" if self.options.uses_dla else ""
        return f"{stem}.{self.options.precision}{dla}.{self.digest[:16]}"


@dataclass(frozen=True)
class CacheLookup:
    """Outcome of looking a key up: ``engine`` bytes on a hit, else ``None`` and the ``reason``
    (``missing``, ``foreign: ...`` or ``corrupt: ...``).
    """

    engine: Optional[bytes]
    reason: str = "hit"

    @property
    def hit(self) -> bool:
        """True when the lookup found a usable engine."""
        return self.engine is not None


@dataclass(frozen=True)
class CachedEngine:
    """An engine from :meth:`EngineCache.get_or_build`; ``built`` is True when this call built it."""

    engine: bytes
    path: Path
    built: bool


class EngineCache:
    """A directory of engines (see the module docstring for layout and guarantees)."""

    def __init__(self, directory: Optional[PathLike] = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        """Where the serialized engine of ``key`` lives in this cache."""
        return self.directory / f"{key.entry_name}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        """Where the JSON sidecar (the key and checksum) of ``key``'s engine lives."""
        return self.directory / f"{key.entry_name}.engine.json"

    def lock_path(self, key: EngineKey) -> Path:
        """The lock file that serializes builds of ``key`` across processes."""
        return self.directory / f"{key.entry_name}.lock"

    def lookup(self, key: EngineKey) -> CacheLookup:
        """The cached engine of ``key`` if its entry is complete, matches the key and is intact.

        Never modifies the cache (a half-finished concurrent write reads as corrupt, and the
        caller then waits for the build lock before deciding anything).
        """
        engine_path, sidecar_path = self.engine_path(key), self.sidecar_path(key)
        if not engine_path.is_file() or not sidecar_path.is_file():
            return CacheLookup(None, "missing")
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            recorded_key, sha256, size = sidecar["key"], sidecar["engine_sha256"], sidecar["engine_bytes"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return CacheLookup(None, f"corrupt: unreadable sidecar {sidecar_path.name} ({exc})")
        expected = key.fields()
        if recorded_key != expected:
            recorded = recorded_key if isinstance(recorded_key, dict) else {}
            changed = [k for k in expected if recorded.get(k) != expected[k]] or ["key fields"]
            return CacheLookup(None, f"foreign: the entry was built for another {', '.join(changed)}")
        try:
            data = engine_path.read_bytes()
        except OSError as exc:
            return CacheLookup(None, f"corrupt: cannot read {engine_path.name} ({exc.strerror or exc})")
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            return CacheLookup(None, f"corrupt: {engine_path.name} does not match its recorded size/SHA-256")
        return CacheLookup(data)

    def store(self, key: EngineKey, engine: bytes, build_seconds: Optional[float] = None) -> Path:
        """Write ``engine`` and its sidecar atomically (engine first); returns the engine path.

        Call it while holding :meth:`build_lock` when other processes may build the same key.
        """
        path = self.engine_path(key)
        atomic_write_bytes(path, engine)
        sidecar = {
            "format": SIDECAR_FORMAT,
            "key": key.fields(),
            "key_digest": key.digest,
            "engine_sha256": hashlib.sha256(engine).hexdigest(),
            "engine_bytes": len(engine),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": build_seconds,
        }
        atomic_write_text(self.sidecar_path(key), json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        return path

    def remove(self, key: EngineKey) -> None:
        """Delete the entry of ``key`` (sidecar first, so no reader trusts a lone engine)."""
        for path in (self.sidecar_path(key), self.engine_path(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @contextlib.contextmanager
    def build_lock(self, key: EngineKey) -> Iterator[None]:
        """Hold the exclusive build lock of ``key`` (blocks while another process holds it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes], allow_build: bool = True,
                     on_miss: Optional[Callable[[str], None]] = None) -> CachedEngine:
        """The engine of ``key``: from the cache, or built by ``build()`` and stored.

        ``on_miss(reason)`` is called before building (e.g. to log why). With ``allow_build``
        False a miss raises :class:`EngineCacheError` saying why the cache could not be used.
        """
        found = self.lookup(key)
        if found.engine is not None:
            return CachedEngine(found.engine, self.engine_path(key), built=False)
        if not allow_build:
            raise EngineCacheError(
                f"no usable engine for {key.model_name} ({key.options.describe()}, TensorRT "
                f"{key.tensorrt_version}, {key.gpu.name} sm{key.gpu.compute_capability}) in "
                f"{self.directory}: {found.reason}. Building is disabled: build it on this machine "
                "with `trt-perception build-engine`, or allow building")
        with self.build_lock(key):
            found = self.lookup(key)  # another process may have built it while we waited
            if found.engine is not None:
                return CachedEngine(found.engine, self.engine_path(key), built=False)
            if on_miss is not None:
                on_miss(found.reason)
            start = time.monotonic()
            engine = build()
            path = self.store(key, engine, build_seconds=round(time.monotonic() - start, 3))
        return CachedEngine(engine, path, built=True)

    def entries(self) -> list[dict[str, Any]]:
        """Sidecars of every entry in the directory (unreadable ones skipped), for listing."""
        found: list[dict[str, Any]] = []
        for sidecar in sorted(self.directory.glob("*.engine.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append({"file": sidecar.name[:-len(".json")], **json.loads(sidecar.read_text("utf-8"))})
        return found
