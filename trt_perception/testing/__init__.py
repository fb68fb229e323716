"""Helpers for the tests and benchmarks, not used by the nodes or the CLI.

- :mod:`.pose_fields`: synthetic confidence maps and part affinity fields of posed people;
- :mod:`.gpu_parity`: frame cases and the CPU reference that GPU preprocessing is checked against;
- :mod:`.tiny_onnx`: tiny ONNX models (a planted INT8-fragile or FP16-overflowing conv) and random frames;
- :mod:`.stand_in_network` (``spin_kernel.cu``): a GPU network stand-in of a chosen duration.
"""
