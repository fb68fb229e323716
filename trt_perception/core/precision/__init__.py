"""Reduced precision you can check: reference comparison, FP16 range check, INT8 sensitivity.

- :mod:`.compare`: a candidate's outputs (TensorRT engine, FP16/INT8 ONNX) against the FP32
  reference, per output tensor and, through the model's decoder, detection by detection;
- :mod:`.fp16_range`: every intermediate tensor's range over frames, against FP16's 65504;
- :mod:`.layer_precision`: layers pinned to FP32/FP16 in a TensorRT build (plain code, no TensorRT);
- :mod:`.sensitivity`: per layer group INT8 sensitivity and the smallest set kept in float;
- :mod:`.result_cache`: results cached on disk under a digest of what produced them.
"""
