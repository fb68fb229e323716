"""Robustness tests run real rclpy nodes with the harness of test/ros (importable as ``harness``)
and damage engine cache entries."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))

from harness import RosHarness  # noqa: E402

from trt_perception.core.cuda.identity import GpuIdentity  # noqa: E402
from trt_perception.core.tensorrt.cache import EngineCache, EngineKey  # noqa: E402
from trt_perception.core.tensorrt.options import BuildOptions  # noqa: E402


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture
def engine_cache(tmp_path):
    """(an empty EngineCache, the key of a small model file for Orin/fp16, that model's path)."""
    model = tmp_path / "detector.onnx"
    model.write_bytes(b"model bytes")
    key = EngineKey.for_model(model, "10.3.0", GpuIdentity("Orin", "8.7"), BuildOptions(precision="fp16"))
    return EngineCache(tmp_path / "cache"), key, model
