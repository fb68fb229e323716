"""Engine cache: keys, integrity checks, stale/foreign/corrupt entries and concurrent builds."""

import dataclasses
import json
import multiprocessing
import os
import time

import pytest

from trt_perception.core.cuda.identity import GpuIdentity
from trt_perception.core.tensorrt.cache import (
    CACHE_ENV,
    EngineCache,
    EngineCacheError,
    EngineKey,
    default_cache_dir,
    file_sha256,
)
from trt_perception.core.tensorrt.options import BuildOptions

ORIN = GpuIdentity("Orin", "8.7")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "detector.onnx"
    path.write_bytes(b"not really onnx, but content is what the key hashes")
    return path


def make_key(model, **changes):
    key = EngineKey.for_model(model, "10.3.0.30", ORIN, BuildOptions(precision="fp16"))
    return dataclasses.replace(key, **changes)


def test_key_hashes_the_model_content(model, tmp_path):
    key = make_key(model)
    assert key.model_sha256 == file_sha256(model)
    copy = tmp_path / "other_name.onnx"
    copy.write_bytes(model.read_bytes())
    assert EngineKey.for_model(copy, "10.3.0.30", ORIN, BuildOptions()).model_sha256 == key.model_sha256
    model.write_bytes(b"retrained weights")
    assert make_key(model).digest != key.digest


@pytest.mark.parametrize("changes", [
    {"tensorrt_version": "10.4.0.26"},
    {"gpu": GpuIdentity("Orin", "8.6")},
    {"gpu": GpuIdentity("NVIDIA A100", "8.7")},
    {"options": BuildOptions(precision="int8", calibration_id="cache:abc")},
    {"options": BuildOptions(precision="fp16", dla_core=0)},
    {"options": BuildOptions(precision="fp16", workspace_mb=256)},
    {"options": BuildOptions(precision="fp16", max_batch=2)},
    {"platform": "x86_64" if os.uname().machine != "x86_64" else "aarch64"},
])
def test_every_key_field_changes_the_digest_and_the_entry(model, changes):
    key = make_key(model)
    other = dataclasses.replace(key, **changes)
    assert other.digest != key.digest
    assert other.entry_name != key.entry_name


def test_entry_name_is_readable(model):
    key = make_key(model, options=BuildOptions(precision="int8", dla_core=1, calibration_id="cache:1"))
    assert key.entry_name == f"detector.int8.dla1.{key.digest[:16]}"


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "engines"))
    assert default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().parts[-3:] == (".cache", "trt_perception", "engines")


def test_store_then_lookup_hits_and_sidecar_records_the_key(model, tmp_path):
    cache, key = EngineCache(tmp_path / "c"), make_key(model)
    assert cache.lookup(key).reason == "missing"
    cache.store(key, b"\x01engine-bytes")
    found = cache.lookup(key)
    assert found.hit and found.engine == b"\x01engine-bytes"
    sidecar = json.loads(cache.sidecar_path(key).read_text())
    assert sidecar["key"] == key.fields() and sidecar["engine_bytes"] == 13
    assert [e["file"] for e in cache.entries()] == [cache.engine_path(key).name]


def test_engine_without_sidecar_is_not_trusted(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)
    cache.store(key, b"engine")
    cache.sidecar_path(key).unlink()
    assert cache.lookup(key).engine is None


def test_corrupt_engine_is_detected_and_rebuilt(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)
    cache.store(key, b"good engine")
    cache.engine_path(key).write_bytes(b"good enginf")  # one flipped byte, same size
    assert cache.lookup(key).reason.startswith("corrupt")
    built = cache.get_or_build(key, lambda: b"rebuilt engine")
    assert built.built and built.engine == b"rebuilt engine"
    assert cache.lookup(key).engine == b"rebuilt engine"


def test_unreadable_sidecar_is_corrupt(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)
    cache.store(key, b"engine")
    cache.sidecar_path(key).write_text("{truncated")
    assert cache.lookup(key).reason.startswith("corrupt: unreadable sidecar")


def test_foreign_entry_is_never_loaded(model, tmp_path):
    """An entry whose sidecar says it was built for another TensorRT (e.g. copied from another
    machine under this name) is refused, naming what differs."""
    cache, key = EngineCache(tmp_path), make_key(model)
    foreign = make_key(model, tensorrt_version="8.6.2.3")
    cache.store(foreign, b"engine from TensorRT 8.6")
    cache.engine_path(foreign).rename(cache.engine_path(key))
    cache.sidecar_path(foreign).rename(cache.sidecar_path(key))
    found = cache.lookup(key)
    assert found.engine is None and found.reason == "foreign: the entry was built for another tensorrt_version"
    with pytest.raises(EngineCacheError, match="foreign.*Building is disabled"):
        cache.get_or_build(key, lambda: b"x", allow_build=False)
    assert cache.get_or_build(key, lambda: b"engine for 10.3").engine == b"engine for 10.3"


def test_stale_entry_after_a_tensorrt_upgrade_is_left_alone_and_a_new_one_built(model, tmp_path):
    cache = EngineCache(tmp_path)
    old = make_key(model, tensorrt_version="10.3.0.30")
    cache.store(old, b"old engine")
    new = make_key(model, tensorrt_version="10.4.0.26")
    calls = []
    result = cache.get_or_build(new, lambda: calls.append(1) or b"new engine")
    assert result.built and calls == [1] and result.engine == b"new engine"
    assert cache.lookup(old).engine == b"old engine"


def test_miss_without_building_is_a_clear_error(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)
    with pytest.raises(EngineCacheError) as info:
        cache.get_or_build(key, lambda: pytest.fail("must not build"), allow_build=False)
    message = str(info.value)
    for part in ("detector", "fp16", "10.3.0.30", "Orin", "missing", "trt-perception build-engine"):
        assert part in message


def test_second_start_loads_without_building(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)
    first = cache.get_or_build(key, lambda: b"engine")
    second = EngineCache(tmp_path).get_or_build(key, lambda: pytest.fail("rebuilt"), allow_build=False)
    assert first.built and not second.built and second.engine == b"engine"


def test_build_failure_leaves_no_entry(model, tmp_path):
    cache, key = EngineCache(tmp_path), make_key(model)

    def failing_build():
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_build(key, failing_build)
    assert cache.lookup(key).reason == "missing"


def _build_in_process(cache_dir, model, log_path, queue):
    key = make_key(model)

    def slow_build():
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        return b"engine built by " + str(os.getpid()).encode()

    entry = EngineCache(cache_dir).get_or_build(key, slow_build)
    queue.put((entry.engine, entry.built))


def test_concurrent_builds_of_one_key_build_once(model, tmp_path):
    log = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_build_in_process, args=(tmp_path / "c", model, log, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert len(log.read_text().splitlines()) == 1
    assert len({engine for engine, _ in results}) == 1
    assert sorted(built for _, built in results) == [False, False, False, True]
    assert EngineCache(tmp_path / "c").lookup(make_key(model)).engine == results[0][0]
