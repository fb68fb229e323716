"""Test-suite wide settings.

DDS must never leave this machine: every test process talks on localhost only, in a ROS domain of
its own (so concurrent test runs do not see each other). This is set here, before any test module
imports rclpy, whatever the caller's environment says.

The domain is claimed, not just drawn: a run holds an exclusive lock on
``<tmp>/trt_perception_ros_domain_<id>.lock`` for its whole life, so two runs of this suite on one
machine never share a domain, and the caller's own ``ROS_DOMAIN_ID`` (where the user's hand-started
nodes live) is never used.
"""

import fcntl
import os
import random
import sys
import tempfile
from typing import IO, List

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)

#: the lock file of the claimed domain, open (so locked) until the process ends
_DOMAIN_LOCK: List[IO[str]] = []


def _claim_ros_domain() -> int:
    """A ROS domain in 1..100 no other run of this suite holds and not the caller's ``ROS_DOMAIN_ID``."""
    callers = os.environ.get("ROS_DOMAIN_ID", "")
    candidates = [domain for domain in range(1, 101) if str(domain) != callers]
    random.Random(os.getpid()).shuffle(candidates)
    for domain in candidates:
        lock = open(os.path.join(tempfile.gettempdir(), f"trt_perception_ros_domain_{domain}.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _DOMAIN_LOCK.append(lock)
        return domain
    raise RuntimeError("every ROS domain 1..100 is held by another test run on this machine")


os.environ["ROS_DOMAIN_ID"] = str(_claim_ros_domain())
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# The pip-based setup installs ROS packages into the virtual environment: make it the ament prefix
# (a sourced ROS workspace already sets AMENT_PREFIX_PATH).
if not os.environ.get("AMENT_PREFIX_PATH") and os.path.isdir(os.path.join(sys.prefix, "share", "ament_index")):
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix
