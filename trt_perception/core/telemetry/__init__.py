"""What the nodes measure and report (ROS-free).

- :mod:`.latency`: per-frame stage clock, header-stamp checks, frame counters;
- :mod:`.latency_stats`: rolling statistics of latencies and rates over a window;
- :mod:`.health`: diagnostic levels and messages from those statistics;
- :mod:`.sequence_gaps`: messages lost before the subscriber, from publisher sequence numbers;
- :mod:`.device_info`: the hardware a backend runs on and its GPU memory in use;
- :mod:`.process_stats`: a process's RSS, threads and file descriptors (leak checks).
"""
