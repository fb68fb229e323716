import pytest
import rclpy
from harness import RosHarness
from rclpy.context import Context


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def context():
    """An rclpy context for (de)serialization, which needs the middleware loaded."""
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)
