"""The suite's ROS domain (test/conftest.py): localhost only, and held by this run alone."""

import os
import subprocess
import sys
import tempfile


def test_discovery_stays_on_this_machine():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100


def test_another_process_cannot_claim_this_runs_domain():
    lock = os.path.join(tempfile.gettempdir(), f"trt_perception_ros_domain_{os.environ['ROS_DOMAIN_ID']}.lock")
    probe = ("import fcntl, sys\n"
             "with open(sys.argv[1], 'w') as f:\n"
             "    try:\n"
             "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "    except OSError:\n"
             "        sys.exit(3)\n")
    assert subprocess.run([sys.executable, "-c", probe, lock]).returncode == 3
