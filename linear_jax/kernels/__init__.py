"""Hand-written accelerator kernels (optional fast paths; the library never needs them)."""
