"""The blocked (delayed-update) sweep epoch equals the vmapped one.

``linear_jax.sweep.blocked`` reorganizes plain SGD over blocks of k
minibatches (Gram-matrix corrections, one W read and write per block); in
float64 it must give the vmapped ``train.train_epoch`` to rounding, for
every loss, l2/none, schedules, a block count that does not divide the
epoch, k = 1, and the full batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_f32_close, data_loss_atol, f32_tolerance

from linear_jax.checks import LinearJaxError
from linear_jax.data import load_dataset
from linear_jax.sweep import (
  SweepGrid,
  blocked,
  engine,
  run_sweep,
  vmapped_epoch,
)
from linear_jax.train import epoch as epoch_lib

N, D, C = 150, 12, 4
STATE_AXES = epoch_lib.TrainState(params=0, opt_state=0, key=None, step=None)


def toy_data(dtype):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D))
  y = rng.integers(0, C, N).astype(np.int32)
  # Centered "raw" rows: prepare() casts to float32, so make them exact.
  x = np.round(x * 64) / 64
  return epoch_lib.DeviceData(
    jnp.asarray(x, dtype),
    jnp.asarray(y),
    jnp.asarray(x[:40], dtype),
    jnp.asarray(y[:40]),
  )


def stacked(config, learning_rates, reg_strengths, margins, dtype):
  hparams = jax.tree.map(
    lambda *a: jnp.stack(a),
    *[
      epoch_lib.make_hparams(
        learning_rate=lr, reg_strength=lam, margin=m, dtype=dtype
      )
      for lr, lam, m in zip(learning_rates, reg_strengths, margins, strict=True)
    ],
  )
  state = jax.vmap(
    lambda h: epoch_lib.init_state(config, h, 0, D, C, N, dtype),
    out_axes=STATE_AXES,
  )(hparams)
  return state, hparams


def run_epochs(fn, state, hparams, data, epochs):
  fn = jax.jit(fn)
  history = []
  for _ in range(epochs):
    state, metrics = fn(state, hparams, data)
    history.append(metrics)
  return state, history


CASES = [  # loss, reg, schedule, batch, block_steps
  ("softmax", "l2", "cosine", 16, 4),  # 9 steps: 2 blocks + 1
  ("svm", "l2", "constant", 16, 3),  # 9 steps: 3 blocks
  ("squared_svm", "none", "step", 10, 4),  # 15 steps: 3 blocks + 3
  ("crammer_singer", "l2", "exponential", 32, 8),  # 4 steps: one block
  ("softmax", "none", "constant", 7, 1),  # k = 1: no delay
  ("svm", "l2", "cosine", None, 4),  # full batch: 1 step
]


@pytest.mark.slow
@pytest.mark.parametrize("loss,reg,schedule,batch,block_steps", CASES)
def test_blocked_epoch_equals_vmapped_epoch_float64(
  x64, loss, reg, schedule, batch, block_steps
):
  config = epoch_lib.TrainConfig(
    loss=loss,
    reg=reg,
    optimizer="sgd",
    schedule=schedule,
    batch_size=batch,
    epochs=3,
  )
  lrs = (1e-3, 1e-2, 3e-2) if loss == "squared_svm" else (1e-2, 1e-1, 0.5)
  state, hparams = stacked(
    config, lrs, (0.0, 0.05, 0.3), (1.0, 0.5, 2.0), jnp.float64
  )
  data = toy_data(jnp.float64)
  want, want_metrics = run_epochs(
    vmapped_epoch(config), state, hparams, data, 3
  )
  got, got_metrics = run_epochs(
    blocked.blocked_epoch(config, block_steps), state, hparams, data, 3
  )
  assert float(jnp.max(jnp.abs(want.params["W"]))) > 1e-3  # it trained
  # float64: eps64 · sqrt(K · S) · 10 ≈ 1e-13 for K ≤ 150 rows and S ≤ 45
  # steps, so 1e-10 holds on any CPU, while a missed Gram correction is > 1e-3.
  np.testing.assert_allclose(
    got.params["W"], want.params["W"], rtol=1e-10, atol=1e-12
  )
  np.testing.assert_allclose(
    got.params["b"], want.params["b"], rtol=1e-10, atol=1e-12
  )
  assert int(got.step) == int(want.step)
  np.testing.assert_array_equal(got.key, want.key)
  jax.tree.map(np.testing.assert_array_equal, got.opt_state, want.opt_state)
  for got_m, want_m in zip(got_metrics, want_metrics, strict=True):
    for name in want_m:  # accuracies are float32 means: allow ~1 ulp
      np.testing.assert_allclose(
        got_m[name],
        want_m[name],
        rtol=1e-9,
        atol=1e-6 if "accuracy" in name else 1e-12,
        err_msg=name,
      )
  if reg == "l2":  # the tracked ‖W‖² moved with the weights
    assert float(jnp.max(got_metrics[-1]["reg_loss"])) > 0


@pytest.mark.slow
def test_a_diverging_configuration_leaves_the_others_unchanged():
  config = epoch_lib.TrainConfig(
    loss="softmax", reg="l2", optimizer="sgd", batch_size=16, epochs=2
  )
  data = toy_data(jnp.float32)
  fn = blocked.blocked_epoch(config, 4)
  # Same shapes (K = 3), so columns 0 and 2 must match bit for bit.
  sane, hp_sane = stacked(
    config, (1e-2, 1e-3, 1e-1), (1e-3, 1e-3, 1e-2), (1, 1, 1), jnp.float32
  )
  mixed, hp_mixed = stacked(
    # The l2 step W ← (1 − 2ηλ) W grows 2·10³⁶-fold: inf within an epoch.
    config,
    (1e-2, 1e6, 1e-1),
    (1e-3, 1e30, 1e-2),
    (1, 1, 1),
    jnp.float32,
  )
  sane, sane_metrics = run_epochs(fn, sane, hp_sane, data, 2)
  mixed, mixed_metrics = run_epochs(fn, mixed, hp_mixed, data, 2)
  assert not np.isfinite(mixed_metrics[-1]["data_loss"][1]) or not np.isfinite(
    mixed_metrics[-1]["reg_loss"][1]
  )
  np.testing.assert_array_equal(
    np.asarray(mixed.params["W"])[[0, 2]], np.asarray(sane.params["W"])[[0, 2]]
  )
  for name in ("val_accuracy", "data_loss", "reg_loss"):
    np.testing.assert_array_equal(
      np.asarray(mixed_metrics[-1][name])[[0, 2]],
      np.asarray(sane_metrics[-1][name])[[0, 2]],
    )


def test_supports_and_choice():
  sgd = epoch_lib.TrainConfig(optimizer="sgd", reg="l2")
  assert blocked.supports(sgd)
  assert blocked.supports(epoch_lib.TrainConfig(optimizer="sgd", reg="none"))
  assert not blocked.supports(epoch_lib.TrainConfig(optimizer="sgd", reg="l1"))
  assert not blocked.supports(epoch_lib.TrainConfig(optimizer="momentum"))
  assert engine.choose_algorithm(sgd, "blocked") == "blocked"
  assert engine.choose_algorithm(sgd, "vmap") == "vmap"
  assert engine.choose_algorithm(sgd, "auto") == "vmap"  # blocked is opt-in
  momentum = epoch_lib.TrainConfig(optimizer="momentum")
  with pytest.raises(
    LinearJaxError,
    match="needs optimizer sgd and regularizer l2 or none, got momentum/l2",
  ):
    engine.choose_algorithm(momentum, "blocked")
  with pytest.raises(LinearJaxError, match="unknown sweep algorithm"):
    engine.choose_algorithm(sgd, "fused")
  with pytest.raises(LinearJaxError, match="block_steps must be ≥ 1"):
    blocked.blocked_epoch(sgd, 0)
  with pytest.raises(LinearJaxError, match="needs optimizer sgd"):
    blocked.blocked_epoch(momentum)
  # k never exceeds the epoch's minibatches (memory model and epoch agree).
  assert blocked.steps_per_block(sgd, 1000, 8) == 3  # B = 256: 3 steps
  assert blocked.steps_per_block(sgd, 100_000, 8) == 8


@pytest.mark.slow
def test_run_sweep_blocked_matches_vmap_float32():
  blobs = load_dataset("blobs", seed=0)
  grid = SweepGrid(
    losses=("svm", "softmax"),
    reg_strengths=(1e-4, 1e-1),
    learning_rates=(1e-2, 1e-1),
    optimizer="sgd",
    epochs=2,
    batch_size=64,
  )
  kwargs = dict(keep_params=True, log=False)
  vmap = run_sweep(grid, blobs, algorithm="vmap", **kwargs)
  blocks = run_sweep(grid, blobs, algorithm="blocked", block_steps=4, **kwargs)
  assert {c["algorithm"] for c in vmap.chunks} == {"vmap"}
  assert {c["algorithm"] for c in blocks.chunks} == {"blocked"}
  # 2 epochs × 25 steps; a block of 4 minibatches of 64 rows sums its Gram
  # corrections over 4 · 64 rows: ≈ 1.4e-4 of max|W|, where a missed or
  # doubled correction moves W by > 1e-2.
  rtol = f32_tolerance(4 * 64, steps=2 * 25)
  for i, p in enumerate(vmap.points):
    params = {"W": vmap.params["W"][i], "b": vmap.params["b"][i]}
    assert_f32_close(blocks.params["W"][i], params["W"], rtol)
    assert_f32_close(blocks.params["b"][i], params["b"], rtol)
    np.testing.assert_allclose(
      blocks.data_loss[i],
      vmap.data_loss[i],
      rtol=rtol,
      atol=data_loss_atol(
        params, blobs.x_train, blobs.y_train, rtol, loss=p.loss, margin=p.margin
      ),
    )
  # Other summation orders: at most one validation example may flip.
  np.testing.assert_allclose(
    blocks.val_accuracy, vmap.val_accuracy, rtol=0, atol=1 / len(blobs.y_val)
  )
  if np.array_equal(blocks.val_accuracy, vmap.val_accuracy):
    assert blocks.best == vmap.best
