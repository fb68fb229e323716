import pytest
from harness import RosHarness


@pytest.fixture
def ros():
    harness = RosHarness()
    yield harness
    harness.close()
