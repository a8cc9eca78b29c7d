"""Timing, the machine's two ceilings and the header of every benchmark run.

Every timing warms up first (compilation and first touch excluded), waits with
``block_until_ready``, and reports the median of repeats. The floor of an
epoch is max(bytes of X read once / copy bandwidth, FLOPs / matmul rate),
both ceilings measured in the same process: count, then measure.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

PRECISION = "float32, XLA default precision"


def median_seconds(
  fn, *args, repeats: int = 5, warmup: int = 1, sync=jax.block_until_ready
) -> float:
  """Median wall time of ``fn(*args)`` after ``warmup`` calls.

  ``sync`` waits for the result (``jax.block_until_ready``; a peer passes its
  own, e.g. ``torch.cuda.synchronize``).
  """
  for _ in range(warmup):
    sync(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    sync(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def copy_bandwidth(num_bytes: int = 1 << 29, repeats: int = 5) -> float:
  """Bytes/s of a device copy y = x + 1 (bytes read + bytes written)."""
  n = num_bytes // 4
  x = jax.random.normal(jax.random.key(0), (n,), jnp.float32)
  # Donated: the output reuses x's buffer, so no fresh pages are touched.
  add = jax.jit(lambda a: a + 1.0, donate_argnums=0)
  x = jax.block_until_ready(add(x))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    x = jax.block_until_ready(add(x))
    times.append(time.perf_counter() - start)
  return 2 * n * 4 / float(np.median(times))


def matmul_rate(
  size: int = 2048, dtype=jnp.float32, precision=None, repeats: int = 5
) -> float:
  """FLOP/s of a square float matmul at XLA's default precision (TF32 for
  float32 on recent NVIDIA GPUs) unless ``precision`` is given.
  """
  key_a, key_b = jax.random.split(jax.random.key(1))
  a = jax.random.normal(key_a, (size, size), dtype)
  b = jax.random.normal(key_b, (size, size), dtype)
  mm = jax.jit(lambda a, b: jnp.dot(a, b, precision=precision))
  return 2 * size**3 / median_seconds(mm, a, b, repeats=repeats)


def epoch_flops(
  num_examples: int, num_features: int, num_classes: int, num_configs: int = 1
) -> float:
  """4·N·D·C per configuration: xW forward and dSᵀx backward (no ∂x)."""
  return 4.0 * num_examples * num_features * num_classes * num_configs


def epoch_floor(
  num_examples: int,
  num_features: int,
  num_classes: int,
  *,
  bytes_per_feature: int,
  bandwidth: float,
  flop_rate: float,
  num_configs: int = 1,
) -> dict:
  """The two times and their max: X read once, and the matmul FLOPs."""
  read = num_examples * num_features * bytes_per_feature / bandwidth
  compute = (
    epoch_flops(num_examples, num_features, num_classes, num_configs)
    / flop_rate
  )
  return {
    "read_seconds": read,
    "compute_seconds": compute,
    "floor_seconds": max(read, compute),
  }


def cpu_name() -> str:
  """The CPU's model name (Linux), else ``platform``'s best guess."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def header(command: str) -> dict:
  """Command, date, device, precision and versions, for the table and JSON."""
  device = jax.devices()[0]
  return {
    "command": command,
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "device": f"{device.device_kind} ({device.platform}), "
    f"{len(jax.devices())} device(s); host {cpu_name()}, "
    f"{os.cpu_count()} cores",
    "precision": PRECISION,
    "versions": f"jax {jax.__version__}, numpy {np.__version__}, "
    f"python {sys.version.split()[0]}",
  }
