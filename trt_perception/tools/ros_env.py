"""Environment defaults for the package's commands that start rclpy (``run``, ``replay``).

Call :func:`apply_local_defaults` before importing rclpy: unless the user set them, ROS traffic
stays on this machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in ROS domain 0 (ROS's own
default, made explicit). A user's explicit setting is never changed: export
``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`` to reach nodes on other machines.

:func:`frame_transport_profile` gives the Fast DDS profile for raw camera frames
(``config/fastdds_large_frames.xml``, see benchmarks/results/transport_delivery.md) as the
environment that selects it, unless the user chose a profile file already.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Mapping, Optional

DEFAULTS = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": "0"}

#: the variables naming Fast DDS's XML profile file (Fast DDS 3 / Kilted, Fast DDS 2 / Jazzy)
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FRAME_PROFILE = "fastdds_large_frames.xml"


def apply_local_defaults() -> dict[str, str]:
    """Set the variables of :data:`DEFAULTS` that are unset or empty; returns what was set."""
    applied = {name: value for name, value in DEFAULTS.items() if not os.environ.get(name)}
    os.environ.update(applied)
    return applied


#: ROS 2 distributions on Fast DDS 2, which reads FASTRTPS_DEFAULT_PROFILES_FILE only
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_variable(environ: Mapping[str, str]) -> str:
    """The profile variable this Fast DDS reads (Fast DDS 3 warns that the old one is deprecated):
    by ``ROS_DISTRO`` on a ROS install, else by the wheels present (``fastdds``: Fast DDS 3).
    """
    distro = environ.get("ROS_DISTRO", "")
    if distro:
        fast_dds_2 = distro in FAST_DDS_2_DISTROS
    else:
        fast_dds_2 = importlib.util.find_spec("fastdds") is None
    return PROFILE_VARIABLES[1] if fast_dds_2 else PROFILE_VARIABLES[0]


def frame_transport_profile(config_dir: str, environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``{variable: <config_dir>/fastdds_large_frames.xml}`` (:func:`profile_variable`), or ``{}``
    when ``environ`` (default :data:`os.environ`) sets one of :data:`PROFILE_VARIABLES`, or the
    middleware is not Fast DDS (``RMW_IMPLEMENTATION`` set to another).
    """
    environ = os.environ if environ is None else environ
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if any(environ.get(name) for name in PROFILE_VARIABLES) or (rmw and rmw != "rmw_fastrtps_cpp"):
        return {}
    return {profile_variable(environ): os.path.join(config_dir, FRAME_PROFILE)}
