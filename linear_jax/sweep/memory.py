"""How many configurations fit on a device at once: the automatic chunk size.

Memory on each device, for a chunk of K configurations spread over n devices
(K/n per device), float32 (4 bytes), D features (W is ``[D, C]``, b ``[C]``),
C classes, N training and N_val validation examples, batch B, and s
optimizer slots per parameter (sgd 0, momentum/nesterov 1, adam(w) 2,
lbfgs ≈ 2·10 + 2):

    data, once per device, shared by all configurations:
        (N + N_val)·D·4 + (N + N_val)·4 (labels) + B·D·4 (the gathered
        minibatch) + N·4 (the permutation)
    per configuration, × K/n:
        state   (D + 1)·C·4·(1 + s)        params + optimizer state, held
                                           twice (scan carry in and out)
        step    2·(D + 1)·C·4              gradient and update
        scores  (4·B + N_val)·C·4          s, ∂L/∂s and masks / softmax for
                                           the minibatch; validation scores

The blocked algorithm (``blocked``, k = steps per block, at most the epoch's
minibatches) also holds, per
configuration, the wide copy of W and three ``[k·B, C]`` blocks (X_blk W_0,
the updates U_i and their scaled copies): + (D + 1)·C·4 + 3·k·B·C·4; and, shared,
the ``[k·B, D]`` block rows and the ``[k·B, k·B]`` Gram matrix.

Sparse rows (``linear_jax.sparse.CSRRows``, nnz stored entries, rows of at
most K_r entries): the data term is the CSR bytes of train and validation
(8 bytes per entry + 4 per row) plus the minibatch's ``[B, K_r]`` block;
each configuration also holds its gathered weight rows ``[B, K_r, C]`` and
their gradient, and one validation block ``[V, K_r, C]`` (V =
``sparse.BLOCK_ROWS`` rows at most): + (2·B + V)·K_r·C·4.

So memory grows linearly in K with slope ≈ (D + 1)·C·4·(4 + 2s) bytes, the
data term does not grow with K. ``config_bytes`` multiplies the per-
configuration sum by ``SAFETY`` (XLA temporaries, fusion buffers). For
CIFAR-10 (D = 3072, C = 10, N = 49,000, B = 256, N_val = 1000, momentum)
that is 1.6 MB per configuration and 0.62 GB of data: a 2 GiB budget holds
934 configurations per device, an 80 GB GPU (× 0.8) about 38,700. Full-batch
training (lbfgs: 10 stored gradient pairs, N·C scores per step) needs
28 MB per configuration.

The budget per device is ``bytes_limit`` from ``device.memory_stats()``
(GPUs) times ``DEVICE_FRACTION``, or ``CPU_BUDGET_BYTES`` where the device
reports none (CPU).
"""

from __future__ import annotations

import math

import jax
import numpy as np

from linear_jax.checks import LinearJaxError
from linear_jax.train import epoch as epoch_lib

CPU_BUDGET_BYTES = 2 << 30
DEVICE_FRACTION = 0.8
SAFETY = 2.0
FLOAT_BYTES = 4


def device_budget(device=None) -> int:
  """Bytes a sweep may use on ``device`` (default: the first device)."""
  device = device or jax.devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  # some backends raise
    stats = None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"] * DEVICE_FRACTION)
  return CPU_BUDGET_BYTES


def state_bytes(
  config: epoch_lib.TrainConfig,
  num_features: int,
  num_classes: int,
  num_examples: int,
) -> int:
  """Bytes of one configuration's params + optimizer state (exact, by shape)."""

  def init():
    hparams = epoch_lib.HyperParams(*([np.float32(0.5)] * 7))
    state = epoch_lib.init_state(
      config, hparams, 0, num_features, num_classes, num_examples
    )
    return state.params, state.opt_state

  shapes = jax.eval_shape(init)
  return int(
    sum(math.prod(s.shape) * s.dtype.itemsize for s in jax.tree.leaves(shapes))
  )


def config_bytes(
  config: epoch_lib.TrainConfig,
  num_features: int,
  num_classes: int,
  num_train: int,
  num_val: int,
  block_steps: int = 0,
) -> int:
  """Device bytes per configuration (module docstring), with ``SAFETY``;
  ``block_steps`` > 0: k of the blocked algorithm (``blocked.steps_per_block``).
  """
  params = (num_features + 1) * num_classes * FLOAT_BYTES
  state = state_bytes(config, num_features, num_classes, num_train)
  batch = epoch_lib.effective_batch_size(config, num_train)
  scores = (4 * batch + num_val) * num_classes * FLOAT_BYTES
  blocks = (
    params + 3 * block_steps * batch * num_classes * FLOAT_BYTES
    if block_steps
    else 0
  )
  return int(SAFETY * (2 * state + 2 * params + scores + blocks))


def data_bytes(
  config: epoch_lib.TrainConfig,
  num_features: int,
  num_train: int,
  num_val: int,
  block_steps: int = 0,
) -> int:
  """Device bytes shared by all configurations (one copy per device)."""
  batch = epoch_lib.effective_batch_size(config, num_train)
  rows = num_train + num_val
  block_rows = max(block_steps, 1) * batch
  gram = (block_rows**2) * FLOAT_BYTES if block_steps else 0
  return (
    rows * num_features * FLOAT_BYTES
    + rows * 4
    + block_rows * num_features * FLOAT_BYTES
    + num_train * 4
    + gram
  )


def sparse_data_bytes(config: epoch_lib.TrainConfig, x_train, x_val) -> int:
  """Device bytes shared by all configurations for sparse rows (CSR)."""
  from linear_jax import sparse  # pylint: disable=g-import-not-at-top

  num_train = x_train.shape[0]
  batch = epoch_lib.effective_batch_size(config, num_train)
  width = max(sparse.max_row_nnz(x_train), sparse.max_row_nnz(x_val))
  stored = sum(x.nnz * 8 + (x.shape[0] + 1) * 4 for x in (x_train, x_val))
  return (
    stored
    + batch * width * 8
    + (num_train + x_val.shape[0]) * 4  # labels
    + num_train * 4  # the permutation
  )


def sparse_config_bytes(
  config: epoch_lib.TrainConfig, num_classes: int, x_train, x_val
) -> int:
  """Extra device bytes per configuration for sparse rows (module doc),
  with ``SAFETY``.
  """
  from linear_jax import sparse  # pylint: disable=g-import-not-at-top

  batch = epoch_lib.effective_batch_size(config, x_train.shape[0])
  width = max(sparse.max_row_nnz(x_train), sparse.max_row_nnz(x_val))
  block = min(sparse.BLOCK_ROWS, x_val.shape[0])
  return int(SAFETY * (2 * batch + block) * width * num_classes * FLOAT_BYTES)


def round_up(value: int, multiple: int) -> int:
  """The smallest multiple of ``multiple`` that is ≥ ``value``."""
  return -(-value // multiple) * multiple


def auto_chunk_size(
  per_config: int, shared: int, num_devices: int, budget: int
) -> int:
  """The largest multiple of ``num_devices`` configurations that fits.

  Args:
    per_config: ``config_bytes``.
    shared: ``data_bytes`` (on every device).
    num_devices: devices the configuration axis is split over.
    budget: bytes per device (``device_budget``).

  Returns:
    Configurations per chunk, a multiple of ``num_devices``, ≥ ``num_devices``.

  Raises:
    LinearJaxError: when the data and one configuration per device do not fit.
  """
  per_device = (budget - shared) // max(per_config, 1)
  if per_device < 1:
    raise LinearJaxError(
      f"the data ({shared / 2**30:.2f} GiB) and one configuration "
      f"({per_config / 2**20:.1f} MiB) exceed the {budget / 2**30:.2f} GiB "
      "device budget; use a smaller dataset or batch size"
    )
  return int(per_device) * num_devices


def resolve_chunk_size(
  requested: int, num_devices: int, per_config: int, shared: int, budget: int
) -> int:
  """``requested`` rounded up to a multiple of the devices; 0 -> automatic."""
  if requested < 0:
    raise LinearJaxError(
      f"--chunk_size must be ≥ 0 (0: automatic), got {requested}"
    )
  if requested == 0:
    return auto_chunk_size(per_config, shared, num_devices, budget)
  return round_up(requested, num_devices)


def split_evenly(
  count: int, chunk_size: int, num_devices: int
) -> tuple[int, int]:
  """``(number of chunks, padded chunk length)`` for ``count`` configurations.

  Chunks are balanced (70 configurations at a limit of 64 run as 2 × 36, not
  64 + 6 padded to 64), all of one length so that one compiled program serves
  them, and that length is a multiple of ``num_devices``.
  """
  chunks = -(-count // chunk_size)
  length = round_up(-(-count // chunks), num_devices)
  return chunks, length
