#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the detection pipeline on the bundled
# sample (data/vtest_sample.mp4) with ONNX Runtime on the CPU, writing out/detections.json.
# Extra arguments go to `trt-perception detect` (e.g. --every 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-77}
mkdir -p out
.venv/bin/trt-perception detect --config models/ssdlite_pedestrian/ssdlite_pedestrian.yaml \
  --input data/vtest_sample.mp4 --backend onnxruntime --json out/detections.json "$@"
.venv/bin/python - <<'PY'
import json
frames = json.load(open("out/detections.json"))["frames"]
counts = [len(f["detections"]) for f in frames.values()]
print(f"{len(frames)} frames, {sum(counts)} pedestrians detected "
      f"(per frame: min {min(counts)}, max {max(counts)}); results in out/detections.json")
PY
