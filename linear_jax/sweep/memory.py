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
(GPUs) times ``DEVICE_FRACTION``, or, where the device reports none (CPU),
the host memory budget (``linear_jax.budget``: ``--memory_budget``,
``$LINEAR_JAX_MEMORY_BUDGET``, or a share of the available memory).
"""

from __future__ import annotations

import math

import jax
import numpy as np

from linear_jax import budget as budget_lib
from linear_jax.checks import LinearJaxError
from linear_jax.train import epoch as epoch_lib

DEVICE_FRACTION = 0.8
SAFETY = 2.0
FLOAT_BYTES = 4


def has_own_memory(device) -> bool:
  """Whether ``device`` reports a memory limit of its own (GPUs, TPUs); a
  CPU device shares the host's memory.
  """
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  # some backends raise
    stats = None
  return bool(stats and stats.get("bytes_limit"))


def device_budget(device=None, *, host_budget=None) -> int:
  """Bytes a sweep may use on ``device`` (default: the first device).

  Args:
    device: a JAX device.
    host_budget: for devices without their own memory (CPU): an explicit
      host budget (a size, ``budget.memory_budget``); default the host
      budget in force.
  """
  device = device or jax.devices()[0]
  if has_own_memory(device):
    return int(device.memory_stats()["bytes_limit"] * DEVICE_FRACTION)
  return budget_lib.memory_budget(host_budget)


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


# ------------------------------------------------------ the sweep on the host

#: Host bytes per configuration of a sweep, besides the device's chunk: its
#: ``Point``, the result arrays, and at the end its ``results.csv`` row as a
#: dict, as CSV and markdown text; and per configuration and epoch: the
#: history's four float64 metrics and ``history.csv``'s text. Measured with
#: tracemalloc over ``experiment.run`` (blobs, 2,500 and 22,500
#: configurations): 1,378 bytes per configuration at 1 epoch, 2,407 at 16,
#: i.e. ≈ 1,310 + 69 per epoch; rounded up here (BENCHMARKS.md, "Host
#: memory").
HOST_BYTES_PER_CONFIG = 1500
HOST_BYTES_PER_CONFIG_EPOCH = 80
#: Checkpoint bytes per configuration: the last metrics (4 × float64) and
#: the divergence epoch (int64); per epoch, the history's 4 × float64.
CHECKPOINT_BYTES_PER_CONFIG = 5 * 8
CHECKPOINT_BYTES_PER_CONFIG_EPOCH = 4 * 8


#: Bytes on disk per configuration of ``results.csv`` and ``results.md``
#: (98 + 77 measured), and per configuration and epoch of ``history.csv``
#: (39 measured), rounded up.
RESULTS_BYTES_PER_CONFIG = 200
HISTORY_BYTES_PER_CONFIG_EPOCH = 45


def sweep_output_bytes(num_configs: int, epochs: int) -> int:
  """Bytes of the tables a sweep writes at the end (not the checkpoint)."""
  return num_configs * (
    RESULTS_BYTES_PER_CONFIG + HISTORY_BYTES_PER_CONFIG_EPOCH * epochs
  )


def sweep_host_bytes(
  num_configs: int, epochs: int, *, params_bytes: int = 0
) -> int:
  """Host bytes of a sweep's bookkeeping and outputs, for ``num_configs``
  configurations of ``epochs`` epochs; ``params_bytes`` per configuration
  when every configuration's params are kept (``keep_params``).
  """
  per_config = (
    HOST_BYTES_PER_CONFIG + HOST_BYTES_PER_CONFIG_EPOCH * epochs + params_bytes
  )
  return num_configs * per_config


def sweep_checkpoint_bytes(
  num_configs: int, epochs: int, *, params_bytes: int = 0
) -> int:
  """Bytes of ``sweep_checkpoint.npz`` once every configuration has run."""
  return num_configs * (
    CHECKPOINT_BYTES_PER_CONFIG
    + CHECKPOINT_BYTES_PER_CONFIG_EPOCH * epochs
    + params_bytes
  )


def check_sweep_host(
  num_configs: int, epochs: int, *, params_bytes: int = 0, host_budget=None
) -> int:
  """Refuses, in one line, a sweep whose host bookkeeping, outputs and
  checkpoint (held in memory while written) exceed the memory budget
  (``linear_jax.budget``), before the grid is expanded.

  Args:
    num_configs: configurations (``SweepGrid.num_points``).
    epochs: epochs per configuration.
    params_bytes: per configuration, when all params are kept.
    host_budget: an explicit budget (a size); default the one in force.

  Returns:
    The estimate, in bytes.
  """
  need = sweep_host_bytes(num_configs, epochs, params_bytes=params_bytes)
  checkpoint = sweep_checkpoint_bytes(
    num_configs, epochs, params_bytes=params_bytes
  )
  budget_lib.check_fits(
    need + checkpoint,
    f"the sweep's {num_configs:,} configurations × {epochs} "
    f"epoch{'' if epochs == 1 else 's'} "
    f"(results and history in memory, a "
    f"{budget_lib.format_size(checkpoint)} checkpoint)",
    "sweep fewer values (or split the grid into several sweeps)",
    override=host_budget,
  )
  return need + checkpoint
