"""TensorRT engines: building, caching, calibration data and I/O planning.

Plain modules (no TensorRT, no CUDA; unit-tested anywhere):

- :mod:`.options`: :class:`~.options.BuildOptions`, the validated engine-build settings;
- :mod:`.profiles`: optimization-profile shapes (min/opt/max) from a batch range;
- :mod:`.cache`: the engine cache (key, directory layout, integrity sidecar, build lock);
- :mod:`.io_plan`: engine tensor metadata -> specs, buffer sizes, input-shape checks;
- :mod:`.calibration`: calibration frames -> preprocessed batches, calibration cache files;
- :mod:`.reports`: ONNX parse errors and DLA layer placement as readable text;
- :mod:`.agreement`: detection agreement of an FP16/INT8 model with its FP32 reference.

The thin layers that call TensorRT and CUDA, imported only when used:

- :mod:`.cuda`: pycuda context, device identity, buffers, CUDA events and graphs;
- :mod:`.builder`: ONNX -> serialized engine (parser, builder config, calibrator, progress);
- :mod:`trt_perception.core.backends.tensorrt`: the runtime backend.
"""
