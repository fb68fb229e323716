"""Where the package's installed files (models, configs) are: the ament share directory on a ROS
install, else the source tree (developer setup).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "trt_perception"


def share_dir() -> Path:
    """``share/trt_perception`` of an installed package, or the repository root in a checkout."""
    source_root = Path(__file__).resolve().parents[2]
    if (source_root / "package.xml").is_file():
        return source_root
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory(PACKAGE))
