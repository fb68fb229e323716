#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs the whole test suite. Extra arguments go
# to pytest (e.g. scripts/test.sh -k detector). ROS traffic stays on this machine: the suite sets
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and its own ROS_DOMAIN_ID (test/conftest.py); this
# script sets them too for anything started outside pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-77}
echo "[test] ruff (ruff.toml)"; .venv/bin/ruff check trt_perception test benchmarks launch scripts nodes
if [ -f mypy.ini ]; then
  echo "[test] mypy (TensorRT layer against tensorrt-stubs)"
  .venv/bin/python -m mypy --config-file mypy.ini
fi
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@" test
