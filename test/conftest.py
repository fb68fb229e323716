"""Test-suite wide settings.

DDS must never leave this machine: every test process talks on localhost only, in a ROS domain of
its own (so concurrent test runs do not see each other). This is set here, before any test module
imports rclpy, whatever the caller's environment says.
"""

import os
import random
import sys

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(1, 100))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# The pip-based setup installs ROS packages into the virtual environment: make it the ament prefix
# (a sourced ROS workspace already sets AMENT_PREFIX_PATH).
if not os.environ.get("AMENT_PREFIX_PATH") and os.path.isdir(os.path.join(sys.prefix, "share", "ament_index")):
    os.environ["AMENT_PREFIX_PATH"] = sys.prefix
