#!/usr/bin/env bash
# Sets up the environment (scripts/setup_env.sh) and runs mypy and the test suite. Extra arguments
# go to pytest (e.g. scripts/test.sh -k detector). ROS traffic stays on this machine: the suite sets
# ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and its own ROS_DOMAIN_ID (test/conftest.py); this
# script sets them too for anything started outside pytest.
# ROS_WHEELS_DISTRO=jazzy runs in .venv-jazzy (ROS 2 Jazzy wheels); TEST_PATHS picks the tests
# (default: all of test/). CI (.ci/run) runs everything on Kilted, then the ROS tests on Jazzy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
case "${ROS_WHEELS_DISTRO:-kilted}" in
  jazzy) VENV=${VENV:-.venv-jazzy} ;;
  *) VENV=${VENV:-.venv} ;;
esac
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-77}
echo "[test] ruff (ruff.toml)"; "$VENV/bin/ruff" check trt_perception test benchmarks launch scripts nodes
if [ -f mypy.ini ]; then
  echo "[test] mypy (TensorRT layer against tensorrt-stubs; ROS tools against ${ROS_WHEELS_DISTRO:-kilted}'s rclpy)"
  "$VENV/bin/python" -m mypy --config-file mypy.ini
fi
# shellcheck disable=SC2086 - TEST_PATHS is a list of paths
exec "$VENV/bin/python" -m pytest -p no:cacheprovider -q "$@" ${TEST_PATHS:-test}
