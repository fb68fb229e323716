"""The preprocessing kernel's pixel code, compiled for the host with nvcc, against the CPU path.

No GPU is needed: ``preprocess_pixel`` of ``preprocess_kernel.cu`` (the function every GPU thread
runs) is looped over the output on the CPU, fed the host-made plan (tables and parameter struct),
and must equal the CPU reference path (decode_image + preprocess) bit for bit in every parity case.
Skipped where nvcc is not installed.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest

from trt_perception.core.gpu.preprocess_plan import PreprocessPlan
from trt_perception.testing.gpu_parity import ParityCase, make_frame, parity_cases, reference

HARNESS = r"""
#include "preprocess_kernel.cu"
extern "C" void preprocess_host(const uint8_t* src, void* dst, const int4* col, const int4* row,
                                const PreprocessParams* p) {
    for (int y = 0; y < p->dst_h; ++y)
        for (int x = 0; x < p->dst_w; ++x)
            preprocess_pixel(*p, src, col, row, dst, x, y);
}
"""


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (the CUDA toolkit) is not on the PATH")
    workdir = tmp_path_factory.mktemp("host_kernel")
    (workdir / "harness.cu").write_text(HARNESS)
    kernel_dir = resources.files("trt_perception.core.gpu")
    library = workdir / "libharness.so"
    result = subprocess.run([nvcc, "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off", "-arch=sm_80",
                             "-I", str(kernel_dir), "-o", str(library), str(workdir / "harness.cu")],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
    lib = ctypes.CDLL(str(library))
    lib.preprocess_host.restype = None
    lib.preprocess_host.argtypes = [ctypes.c_void_p] * 5
    return lib


def _run_host(lib: ctypes.CDLL, plan: PreprocessPlan, data: bytes) -> np.ndarray:
    src = np.frombuffer(data, dtype=np.uint8)
    out = np.full(plan.config.input_shape, np.nan, dtype=plan.config.np_dtype)  # poisoned
    lib.preprocess_host(src.ctypes.data, out.ctypes.data, plan.col_table.ctypes.data,
                        plan.row_table.ctypes.data, plan.params.ctypes.data)
    return out


@pytest.mark.parametrize("case", parity_cases(), ids=str)
def test_kernel_pixel_code_equals_cpu_reference(host_kernel: ctypes.CDLL, case: ParityCase) -> None:
    rng = np.random.default_rng(abs(hash(str(case))) % 2**32)
    data, layout = make_frame(case, rng)
    got = _run_host(host_kernel, PreprocessPlan.create(case.config, layout), data)
    want = reference(case, data, layout)
    assert not np.isnan(got).any(), "some output elements were never written"
    got, want = got.reshape(-1), want.reshape(-1)
    differ = np.flatnonzero(got != want)
    assert differ.size == 0, (f"{differ.size} of {got.size} values differ; first at flat index "
                              f"{differ[0]}: {got[differ[0]]} vs {want[differ[0]]}")
