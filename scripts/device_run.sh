#!/usr/bin/env bash
# Runs the GPU tests and benchmarks/gpu_pipeline.py, gpu_decode.py, gpu_batch.py (BENCHMARKS picks) on the lent GPU
# machine (the `device` tool),
# from the repository root of the copy it sends, writing logs and results into $OUT.
# Carry [".device/base", ".whl"]: pycuda staged by ../shared/device/stage.sh, and OpenCV 5.0.0.93
# (the version the CPU reference path is tested with here) as .whl/cv2.tar.xz, an xz tar of the
# opencv-python-headless cp312 wheel's contents (the wheel itself is too big to carry). For
# onnxruntime-gpu, carry the .device/ortK parts in calls just before (../shared/device/README.md).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
bash .device/base/bootstrap.sh || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -e /tmp/site/cv2/__init__.py ] || tar xJf .whl/cv2.tar.xz -C /tmp/site || exit 1
# onnxruntime-gpu (when bootstrap.sh assembled it from .device/ortK parts) needs cuDNN & co from the
# machine's nvidia pip packages
nv=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null) && \
  export LD_LIBRARY_PATH=$(find "$nv" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/nvidia_smi.txt"
python3 -c "import cv2, numpy, pycuda, onnxruntime as o; print('cv2', cv2.__version__, 'numpy', numpy.__version__,
  'pycuda', pycuda.VERSION_TEXT, 'onnxruntime', o.__version__, o.get_available_providers())"
python3 -m pytest -q -p no:cacheprovider test/core/test_gpu_plan.py test/core/test_gpu_kernel_host.py \
  test/core/test_gpu_preprocess.py test/core/test_gpu_pipeline.py test/core/test_gpu_pipeline_onnxruntime.py \
  test/core/test_gpu_batch_pipeline.py test/core/test_batch_pipeline.py \
  test/core/test_preprocess_choice.py test/core/test_image.py "$@" > "$OUT/pytest.log" 2>&1
echo "pytest exit $?"; tail -15 "$OUT/pytest.log"
# BENCHMARKS: which benchmarks to run after the tests (default all three)
for b in ${BENCHMARKS:-pipeline decode batch}; do
  case $b in
    pipeline) python3 benchmarks/gpu_pipeline.py --out "$OUT" --repeats 300 2>&1 | tee "$OUT/bench.log" | tail -60 ;;
    decode) python3 benchmarks/gpu_decode.py --out "$OUT" --repeats 300 2>&1 | tee "$OUT/decode.log" | tail -40 ;;
    batch) python3 benchmarks/gpu_batch.py --out "$OUT" 2>&1 | tee "$OUT/batch.log" | tail -45 ;;
  esac
done
