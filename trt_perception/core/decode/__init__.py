"""Decoders from raw network outputs to detections and skeletons."""
