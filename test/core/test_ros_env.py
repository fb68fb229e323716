"""frame_transport_profile: the shipped Fast DDS profile, unless the user chose one or another rmw."""

from pathlib import Path
from xml.etree import ElementTree

from trt_perception.tools.ros_env import PROFILE_VARIABLES, frame_transport_profile

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_the_profile_is_selected_for_fast_dds_and_exists():
    env = frame_transport_profile(str(CONFIG), {})
    (variable, path), = env.items()
    assert variable in PROFILE_VARIABLES
    root = ElementTree.parse(path).getroot()      # well-formed, a default profile
    participant = root.find("{*}participant")
    assert participant is not None and participant.get("is_default_profile") == "true"
    assert frame_transport_profile(str(CONFIG), {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}) == env


def test_a_users_profile_or_another_middleware_is_left_alone():
    for name in PROFILE_VARIABLES:
        assert frame_transport_profile(str(CONFIG), {name: "/mine.xml"}) == {}
    assert frame_transport_profile(str(CONFIG), {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == {}


def test_the_variable_follows_the_fast_dds_version_of_the_distribution():
    path = str(CONFIG / "fastdds_large_frames.xml")
    assert frame_transport_profile(str(CONFIG), {"ROS_DISTRO": "jazzy"}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": path}
    assert frame_transport_profile(str(CONFIG), {"ROS_DISTRO": "kilted"}) == {"FASTDDS_DEFAULT_PROFILES_FILE": path}
