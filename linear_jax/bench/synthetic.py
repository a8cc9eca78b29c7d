"""Synthetic data of CIFAR-10's shape, for the speed sections.

Uniform uint8 "pixels" ``[N, D]`` and uniform labels in [0, C): what an epoch
costs does not depend on the values, only on N, D, C and the storage type.
Two storages of the same rows: float32 with the mean image already
subtracted (4 bytes per feature to read), and raw uint8 that each minibatch
shifts by the mean on the fly (1 byte per feature).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from linear_jax import training

#: Storage name -> bytes per feature read per epoch.
STORAGES = {"float32": 4, "uint8": 1}
NUM_VALIDATION = 1000


@dataclasses.dataclass(frozen=True, eq=False)
class Pixels:
  """``x`` uint8 ``[N, D]``, ``y`` int32 ``[N]``, ``mean`` float32 ``[D]``."""
  x: np.ndarray
  y: np.ndarray
  mean: np.ndarray


def cifar_shaped(num_examples: int, num_features: int, num_classes: int,
                 seed: int = 0) -> Pixels:
  """Random uint8 pixels and labels, and their mean image."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(num_examples, num_features), dtype=np.uint8)
  y = rng.integers(0, num_classes, size=num_examples).astype(np.int32)
  return Pixels(x, y, x.mean(axis=0, dtype=np.float64).astype(np.float32))


def device_data(pixels: Pixels, storage: str) -> training.DeviceData:
  """The pixels on the device as ``storage`` ("float32" or "uint8").

  The validation split is the first ``NUM_VALIDATION`` training rows (the
  epoch program evaluates it once per epoch).
  """
  if storage not in STORAGES:
    raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
  x, y = pixels.x, pixels.y
  val = min(NUM_VALIDATION, x.shape[0])
  if storage == "uint8":
    return training.DeviceData.put(x, y, x[:val], y[:val], shift=pixels.mean)
  xf = x.astype(np.float32)
  xf -= pixels.mean
  return training.DeviceData.put(xf, y, xf[:val], y[:val])
