"""Section ``sweep``: K configurations trained at once against one.

One epoch of K configurations (learning rates log-spaced, everything else
equal) with ``jit(linear_jax.sweep.vmapped_epoch(config))``: params and
optimizer state carry a ``[K]`` axis, the data, the permutation and hence
each minibatch gather are shared, so the K products x_b W_k become one
``[B, D] @ [D, K·C]`` matmul. Timed side by side with one configuration's
plain epoch (``training.make_epoch_fn``) on the same float32 data.

Targets (issue 6): K = 64 costs at most K/4 = 16 single epochs, and the
sweep's epoch is within 1.5× of its arithmetic floor FLOPs(K)/matmul rate,
FLOPs(K) = 4·N·D·C·K (``benchmarking.epoch_flops``). The two targets can
conflict: the floor alone makes the ratio at least FLOPs(K)/rate divided by
the one-configuration time, reported as ``ratio_lower_bound``; when one
epoch already runs near its own floor that bound exceeds K/4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from linear_jax import benchmarking
from linear_jax import training
from linear_jax.bench import epoch_time
from linear_jax.bench.report import Row
from linear_jax.bench.report import Section
from linear_jax.sweep import vmapped_epoch


def stacked_state(config: training.TrainConfig, num_configs: int,
                  num_features: int, num_classes: int, num_examples: int):
  """``(state[K], hparams[K])``: zero weights, learning rates 1e-8 … 1e-6."""
  one = training.init_state(config, training.make_hparams(), 0, num_features,
                            num_classes, num_examples)
  stack = lambda a: jnp.broadcast_to(a, (num_configs,) + a.shape)
  state = one._replace(params=jax.tree.map(stack, one.params),
                       opt_state=jax.tree.map(stack, one.opt_state))
  hparams = jax.tree.map(stack, training.make_hparams())._replace(
      learning_rate=jnp.asarray(np.logspace(-8, -6, num_configs), jnp.float32))
  return state, hparams


def time_sweep_epoch(config: training.TrainConfig, data: training.DeviceData,
                     num_configs: int, num_classes: int, repeats: int) -> float:
  """Median seconds of one epoch of ``num_configs`` configurations."""
  n, d = data.x_train.shape
  state, hparams = stacked_state(config, num_configs, d, num_classes, n)
  compiled = jax.jit(vmapped_epoch(config)).lower(state, hparams, data).compile()
  return benchmarking.median_seconds(compiled, state, hparams, data,
                                     repeats=repeats)


def run(data: training.DeviceData, ceilings: dict, *, num_configs: int,
        num_classes: int, batch_size: int, repeats: int, log=print) -> Section:
  """Times 1 and K configurations; rows with both ratios."""
  section = Section()
  n, d = data.x_train.shape
  config = epoch_time.epoch_config(batch_size)
  log(f"sweep: 1 configuration, B={batch_size}, timing {repeats} epochs")
  one = epoch_time.time_epoch(config, data, num_classes, repeats)
  log(f"sweep: {num_configs} configurations, timing {repeats} epochs")
  many = time_sweep_epoch(config, data, num_configs, num_classes, repeats)
  floor = benchmarking.epoch_floor(
      n, d, num_classes, bytes_per_feature=4, bandwidth=ceilings["bandwidth"],
      flop_rate=ceilings["flop_rate"], num_configs=num_configs)
  compute = floor["compute_seconds"]
  shape = f"N={n} D={d} C={num_classes} B={batch_size} float32"
  section.add(Row(
      "sweep", "1 configuration × 1 epoch (jit epoch)", seconds=one,
      rate=n / one, rate_unit="examples/s", note=shape,
      extra={"num_configs": 1}), log)
  section.add(Row(
      "sweep", f"{num_configs} configurations × 1 epoch (jit(vmap) epoch)",
      seconds=many, rate=n * num_configs / many,
      rate_unit="config-examples/s", ratio=many / one,
      ratio_of=f"{num_configs} configs/1 config time",
      note=f"target ≤ {num_configs / 4:g}; the FLOP floor alone implies "
           f"≥ {compute / one:.3g}",
      extra={"num_configs": num_configs, "ratio_lower_bound": compute / one}),
      log)
  section.add(Row(
      "sweep", f"per configuration-epoch in the {num_configs}-config sweep",
      seconds=many / num_configs, ratio=many / compute,
      ratio_of="time/FLOP floor",
      note=f"floor FLOPs({num_configs})/matmul rate = "
           f"{compute * 1e3:.3g} ms per sweep epoch; target ≤ 1.5",
      extra={"num_configs": num_configs, "compute_floor_seconds": compute,
             "read_floor_seconds": floor["read_seconds"]}), log)
  return section
