"""The machine a benchmark ran on, and its two ceilings, measured in-process.

The ceilings are ``linear_jax.benchmarking.copy_bandwidth`` (bytes/s of
y = x + 1, read + write) and ``matmul_rate`` (FLOP/s of a square float32
matmul at XLA's default precision); the epoch and sweep floors divide by them.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys

import jax
import numpy as np

from linear_jax import benchmarking
from linear_jax.bench.report import Row

PRECISION = "float32, XLA default precision"


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
  """Command, date, device, precision and versions, for the table and the JSON."""
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


def measure_ceilings(copy_bytes: int, matmul_size: int, repeats: int
                     ) -> tuple[dict, list[Row]]:
  """``{"bandwidth": bytes/s, "flop_rate": FLOP/s}`` and their two rows."""
  bandwidth = benchmarking.copy_bandwidth(copy_bytes, repeats=repeats)
  flop_rate = benchmarking.matmul_rate(matmul_size, repeats=repeats)
  rows = [
      Row("machine", "copy bandwidth y = x + 1 (read + write)",
          rate=bandwidth / 1e9, rate_unit="GB/s",
          note=f"{copy_bytes / 2**20:.0f} MiB float32 array"),
      Row("machine", f"float32 matmul {matmul_size}×{matmul_size}",
          rate=flop_rate / 1e9, rate_unit="GFLOP/s",
          note="XLA default precision"),
  ]
  return {"bandwidth": bandwidth, "flop_rate": flop_rate}, rows
