"""I/O planning from engine tensor metadata: specs, buffer sizes, profile checks (no TensorRT)."""

import re

import numpy as np
import pytest

from trt_perception.core.tensorrt.io_plan import (
    DeviceTensor,
    EngineTensor,
    IOPlanError,
    check_engine_tensors,
    io_specs,
    numpy_dtype,
    plan_buffers,
)

F32 = np.dtype(np.float32)
IMAGES = EngineTensor("images", True, F32, (-1, 3, 300, 300),
                      profile=((1, 3, 300, 300), (2, 3, 300, 300), (8, 3, 300, 300)))
BOXES = EngineTensor("boxes", False, F32, (-1, 1917, 4))
SCORES = EngineTensor("scores", False, np.dtype(np.float16), (-1, 1917, 2))


def test_trt_type_names_map_to_numpy_and_unknown_ones_are_refused():
    assert numpy_dtype("FLOAT", "x") == np.float32
    assert numpy_dtype("HALF", "x") == np.float16
    assert numpy_dtype("INT64", "x") == np.int64
    with pytest.raises(IOPlanError, match="'x' has TensorRT type BF16"):
        numpy_dtype("BF16", "x")


def test_specs_mark_dynamic_dimensions_as_none():
    inputs, outputs = io_specs([IMAGES, BOXES, SCORES])
    assert list(inputs) == ["images"] and list(outputs) == ["boxes", "scores"]
    assert inputs["images"].shape == (None, 3, 300, 300)
    assert outputs["scores"].dtype == np.float16


def test_an_engine_built_for_one_batch_reports_static_specs():
    """A batch-dynamic model built with the profile 1..1 takes one shape: single-frame callers (the
    GPU pipeline) get static specs; outputs whose resolved shape is unknown stay dynamic."""
    one = EngineTensor("images", True, F32, (-1, 3, 300, 300),
                       profile=((1, 3, 300, 300), (1, 3, 300, 300), (1, 3, 300, 300)))
    inputs, outputs = io_specs([one, BOXES, SCORES], {"boxes": (1, 1917, 4)})
    assert inputs["images"].shape == (1, 3, 300, 300)
    assert outputs["boxes"].shape == (1, 1917, 4) and outputs["scores"].shape == (None, 1917, 2)
    _, outputs = io_specs([IMAGES, BOXES, SCORES], {"boxes": (8, 1917, 4)})   # a real range: dynamic
    assert outputs["boxes"].shape == (None, 1917, 4)


def test_buffers_are_sized_for_the_profile_maximum():
    plans = plan_buffers([IMAGES, BOXES, SCORES], {"boxes": (8, 1917, 4), "scores": (8, 1917, 2)})
    sizes = {p.name: (p.shape, p.nbytes) for p in plans}
    assert sizes["images"] == ((8, 3, 300, 300), 8 * 3 * 300 * 300 * 4)
    assert sizes["boxes"] == ((8, 1917, 4), 8 * 1917 * 4 * 4)
    assert sizes["scores"] == ((8, 1917, 2), 8 * 1917 * 2 * 2)


def test_static_tensors_use_their_own_shape():
    static = EngineTensor("in", True, F32, (1, 3, 4, 4))
    assert plan_buffers([static], {})[0].shape == (1, 3, 4, 4)


def test_data_dependent_output_is_refused():
    with pytest.raises(IOPlanError, match="data-dependent"):
        plan_buffers([IMAGES, BOXES], {"boxes": (8, -1, 4)})


@pytest.mark.parametrize("shape, fragment", [
    ((4, 3, 300, 300), None),
    ((1, 3, 300, 300), None),
    ((9, 3, 300, 300), "outside the engine's optimization profile"),
    ((1, 3, 320, 320), r"must have shape \[\?, 3, 300, 300\]"),
    ((3, 300, 300), r"must have shape"),
])
def test_input_shape_checks_against_the_profile(shape, fragment):
    problem = IMAGES.check_input_shape(shape)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and re.search(fragment, problem)


def test_vectorized_formats_and_profileless_dynamic_inputs_are_refused():
    with pytest.raises(IOPlanError) as info:
        check_engine_tensors([EngineTensor("a", True, F32, (1, 4), linear=False),
                              EngineTensor("b", True, F32, (-1, 4))])
    assert "'a' uses a vectorized" in str(info.value) and "'b' is dynamic but has no" in str(info.value)
    check_engine_tensors([IMAGES, BOXES])  # fine


def test_device_tensor_checks():
    good = DeviceTensor(0x7f00_0000, (2, 3, 300, 300), F32)
    assert good.check(IMAGES) is None and good.nbytes == 2 * 3 * 300 * 300 * 4
    assert "non-null device pointer" in DeviceTensor(0, (1, 3, 300, 300), F32).check(IMAGES)
    assert "must be float32" in DeviceTensor(1, (1, 3, 300, 300), np.dtype(np.float16)).check(IMAGES)
    assert "outside" in DeviceTensor(1, (16, 3, 300, 300), F32).check(IMAGES)
