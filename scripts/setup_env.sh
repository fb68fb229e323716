#!/usr/bin/env bash
# Sets up the developer environment in .venv (idempotent; re-running skips finished steps):
#   1. Debian/Ubuntu build tools when missing (cmake, g++, python3-venv, python3-dev);
#   2. a virtual environment with the core, ROS 2 wheels and test dependencies;
#   3. the wheels' CMake exports pointed at this machine's Python and numpy headers;
#   4. vision_msgs (2D subset, identical definitions) built into the venv if not importable;
#   5. this package's messages built with cmake into the venv, and the package installed editable.
# Python 3.10 to 3.13 is needed (the ROS 2 wheels exist for those). PYTHON picks the interpreter.
# ROS_WHEELS_DISTRO picks the distribution: kilted (default: .venv, requirements-ros.txt) or jazzy
# (.venv-jazzy, requirements-ros-jazzy.txt; its wheels exist for Python 3.11). VENV overrides the folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DISTRO=${ROS_WHEELS_DISTRO:-kilted}
case "$DISTRO" in
  kilted) ROS_REQ=requirements-ros.txt; VENV=${VENV:-$ROOT/.venv} ;;
  jazzy) ROS_REQ=requirements-ros-jazzy.txt; VENV=${VENV:-$ROOT/.venv-jazzy} ;;
  *) echo "[setup] ROS_WHEELS_DISTRO must be kilted or jazzy, got '$DISTRO'"; exit 1 ;;
esac
PY=${PYTHON:-python3}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

"$PY" - <<'EOF' || { echo "[setup] Python 3.10 to 3.13 is required (the ROS 2 wheels exist for those)"; exit 1; }
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)
EOF

# 1. System tools (root: apt-get; otherwise sudo if present).
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++ make)
"$PY" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
[ -f "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Virtual environment and Python packages.
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python
req_stamp=$VENV/.requirements.sha256
req_sum=$(cat requirements.txt "$ROS_REQ" requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$req_stamp" 2>/dev/null)" != "$req_sum" ]; then
  log "installing Python packages (core, ROS 2 $DISTRO wheels, test tools)"
  "$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VPY" -m pip install -q --disable-pip-version-check \
    -r requirements.txt -r "$ROS_REQ" -r requirements-dev.txt
  echo "$req_sum" > "$req_stamp"
fi

# TensorRT type stubs for mypy, in their own folder (mypy.ini): inside the venv they would make
# `import tensorrt` succeed as an empty namespace package on machines without TensorRT.
if [ ! -d "$VENV/typing/tensorrt_stubs-10.13.0.35.1.dist-info" ]; then
  "$VPY" -m pip install -q --disable-pip-version-check --no-deps --target "$VENV/typing" \
    tensorrt-stubs==10.13.0.35.1
  # The published 10.13 stubs do not parse: a parameter named `in`, and a parameter without a
  # default after defaulted ones. Repair both so mypy can read them.
  sed -i -E -e 's/^( +def [A-Za-z_]+\(self[^,]*, )in: /\1in_: /' \
    -e 's/power: Weights = None, channel_axis: int\)/power: Weights = None, channel_axis: int = ...)/' \
    "$VENV/typing/tensorrt_bindings/tensorrt.pyi"
fi

# 3. The wheels' rosidl Python exports name the wheel builder's include dirs: use ours.
PYINC=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$VPY" -c "import numpy; print(numpy.get_include())")
for f in "$VENV"/share/*/cmake/*__rosidl_generator_pyExport.cmake; do
  sed -i -E "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python3\.[0-9]+#$PYINC#g; \
s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" "$f"
done

export AMENT_PREFIX_PATH=$VENV CMAKE_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
cmake_install() {  # cmake_install SOURCE_DIR BUILD_DIR [cmake args...]: configure, build, install into the venv
  local src=$1 build=$2; shift 2
  mkdir -p "$build"
  if ! (cmake -S "$src" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" \
          -DBUILD_TESTING=OFF "$@" && cmake --build "$build" -j"$(nproc)" && cmake --install "$build") \
        > "$build/build.log" 2>&1; then
    tail -40 "$build/build.log"; echo "[setup] cmake build of $src failed (log: $build/build.log)"; exit 1
  fi
}

# 4. vision_msgs, only where the real package is not importable.
if ! "$VPY" -c "import vision_msgs.msg" 2>/dev/null; then
  log "building vision_msgs (2D subset) into the venv"
  cmake_install third_party/vision_msgs "$ROOT/ros_build/$DISTRO/vision_msgs"
fi

# 5. This package's messages (interfaces only: the Python code is installed editable by pip).
msg_sum=$(cat msg/*.msg CMakeLists.txt package.xml | sha256sum | cut -d' ' -f1)
msg_stamp=$VENV/.trt_perception_msgs.sha256
if [ "$(cat "$msg_stamp" 2>/dev/null)" != "$msg_sum" ]; then
  log "building trt_perception messages into the venv"
  cmake_install "$ROOT" "$ROOT/ros_build/$DISTRO/trt_perception" -DTRT_PERCEPTION_INTERFACES_ONLY=ON
  # Leave the generated modules as a namespace portion (no __init__.py, no metadata of its own):
  # the source package's __init__ extends its __path__ to them, and pip owns the metadata.
  site=$("$VPY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  rm -rf "$site/trt_perception/__init__.py" "$site"/trt_perception-*.egg-info
  echo "$msg_sum" > "$msg_stamp"
fi
if ! "$VPY" -c "import trt_perception.cli" 2>/dev/null || [ ! -x "$VENV/bin/trt-perception" ]; then
  log "installing trt_perception (editable)"
  "$VPY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    -e . --config-settings editable_mode=compat
fi
log "ready: $VENV (ROS 2 $DISTRO wheels)"
