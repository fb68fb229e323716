"""Environment defaults for the package's commands that start rclpy (``run``, ``replay``).

Call :func:`apply_local_defaults` before importing rclpy: unless the user set them, ROS traffic
stays on this machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in ROS domain 0 (ROS's own
default, made explicit). A user's explicit setting is never changed: export
``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` to reach nodes on other machines.
"""

from __future__ import annotations

import os

DEFAULTS = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "0"}


def apply_local_defaults() -> dict[str, str]:
    """Set the variables of :data:`DEFAULTS` that are unset or empty; returns what was set."""
    applied = {name: value for name, value in DEFAULTS.items() if not os.environ.get(name)}
    os.environ.update(applied)
    return applied
