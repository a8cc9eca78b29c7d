"""Hand-written kernels: optional fast paths for one recipe each (the library never needs them).

- ``pallas_epoch``: the softmax + momentum epoch as one Pallas (Triton) kernel, GPUs;
- ``cpu_epoch``: the same epoch as one fused C++ XLA FFI call, CPUs (built with g++).
"""
