"""ROS 2 nodes and message conversions (the only part of the package that imports rclpy)."""
