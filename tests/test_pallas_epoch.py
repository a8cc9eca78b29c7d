"""The one-kernel Pallas epoch computes what train.train_epoch computes.

Runs in Pallas' interpreter on the CPU with one program (the grid barrier is
exercised on a GPU by benchmarks/gpu.py (section pallas), which checks the same
equality at P = 96 before timing).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_f32_close, f32_tolerance, slow_except

from linear_jax import shuffle
from linear_jax.kernels import pallas_epoch
from linear_jax.train import epoch as epoch_lib


@pytest.mark.parametrize(
  "schedule", slow_except(["constant", "cosine"], "constant")
)
def test_interpreted_kernel_matches_training_epoch(schedule):
  n, d, c, b = 768, 32, 10, 256
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = rng.integers(0, c, n).astype(np.int32)
  config = epoch_lib.TrainConfig(
    loss="softmax",
    reg="l2",
    optimizer="momentum",
    batch_size=b,
    epochs=1,
    schedule=schedule,
  )
  hp = epoch_lib.make_hparams(
    learning_rate=0.1, reg_strength=1e-3, momentum=0.9
  )
  data = epoch_lib.DeviceData.put(x, y, x[:8], y[:8])
  state = epoch_lib.init_state(config, hp, 0, d, c, n)
  state = state._replace(
    params={
      "W": jnp.asarray(0.1 * rng.normal(size=(d, c)), jnp.float32),
      "b": jnp.asarray(0.1 * rng.normal(size=c), jnp.float32),
    }
  )
  expected, _ = epoch_lib.make_epoch_fn(config)(state, hp, data)
  _, perm_key = jax.random.split(jax.random.wrap_key_data(state.key))
  batches = shuffle.permutation(perm_key, n).reshape(-1, b)
  got = pallas_epoch.softmax_momentum_epoch(
    state.params,
    batches,
    data.x_train,
    data.y_train,
    jnp.array([0.1, 0.9, 1e-3], jnp.float32),
    num_programs=1,
    interpret=True,
    cosine=schedule == "cosine",
  )
  step = expected.params["W"] - state.params["W"]
  err = jnp.linalg.norm(got["W"] - expected.params["W"]) / jnp.linalg.norm(step)
  # 3 steps of 256-row gradient sums, then W + step rounds at eps32·‖W‖:
  # rtol · (‖W‖ + ‖step‖) / ‖step‖ ≈ 7e-4 of the step (measured 3e-7); a
  # wrong momentum, schedule or softmax moves W by > 1e-2 of the step.
  rtol = f32_tolerance(b, steps=n // b)
  norm_w = jnp.linalg.norm(expected.params["W"])
  assert float(err) < rtol * float(
    (norm_w + jnp.linalg.norm(step)) / jnp.linalg.norm(step)
  )
  assert_f32_close(got["b"], expected.params["b"], rtol)
