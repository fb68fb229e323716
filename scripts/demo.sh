#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the whole system on the bundled sample bag
# with ONNX Runtime on the CPU: `trt-perception run` starts detector_node in the background (as
# launch/perception.launch.py would), `trt-perception replay` plays data/vtest_bag into it as fast
# as it answers, records its detections and latency into out/replay_bag, prints the report and
# writes out/replay_report.json and out/latency.png. The node's log goes to out/run.log.
# Extra arguments go to `trt-perception replay` (e.g. --rate 1 --loop 3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-77}
mkdir -p out
rm -rf out/replay_bag
.venv/bin/trt-perception run --params config/detector.yaml --params data/demo_params.yaml > out/run.log 2>&1 &
run_pid=$!
trap 'kill -INT "$run_pid" 2>/dev/null || true; wait "$run_pid" || true' EXIT
if ! .venv/bin/trt-perception replay --bag data/vtest_bag --rate 0 --record out/replay_bag \
    --report out/replay_report.json --plot out/latency.png "$@"; then
  echo "replay failed; the node's log:" >&2
  tail -n 20 out/run.log >&2
  exit 1
fi
