"""``train.train_epoch`` against a plain Python loop, the anchor of every fast
path (the fused CPU epoch, the blocked sweep and the sweep engine are checked
against ``train_epoch``).

The loop walks the minibatches that ``epoch_batches`` draws, takes
``jax.grad`` of ``linear_jax.objective`` on each, and applies
``optax.sgd(lr_t, momentum)`` with the schedule written out here, in float64:
any slip in the minibatching, the schedule, the key carried between epochs or
the gradient layout shows up far above float64 rounding (1e-10 on numbers of
order 1 after a few steps).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import linear_jax as lj
from linear_jax import losses
from linear_jax.train import epoch as epoch_lib

N, D, C, B, EPOCHS = 12, 3, 4, 4, 2
HP = dict(
  learning_rate=0.3,
  reg_strength=0.05,
  margin=1.3,
  label_smoothing=0.1,
  momentum=0.8,
)


def reference_schedule(name, total_steps):
  """lr_t as the lecture states it: constant, or ½(1 + cos(π t / T))·lr."""
  if name == "constant":
    return lambda t: HP["learning_rate"]
  return lambda t: (
    HP["learning_rate"]
    * 0.5
    * (1 + jnp.cos(math.pi * jnp.minimum(t, total_steps) / total_steps))
  )


def reference_epochs(config, key, x, y):
  """``EPOCHS`` epochs of plain minibatch SGD with momentum, step by step
  (each step one jitted program).
  """
  per_epoch = 1 if config.batch_size is None else N // B
  opt = optax.sgd(
    reference_schedule(config.schedule, per_epoch * EPOCHS),
    momentum=HP["momentum"],
  )
  params = {
    "W": jnp.zeros((D, C), jnp.float64),
    "b": jnp.zeros((C,), jnp.float64),
  }
  opt_state = opt.init(params)
  options = {name: HP[name] for name in losses.LOSS_OPTIONS[config.loss]}
  objective = lambda p, xb, yb: lj.objective(
    p,
    xb,
    yb,
    loss=config.loss,
    reg=config.reg,
    reg_strength=HP["reg_strength"],
    **options,
  )

  @jax.jit
  def step(params, opt_state, idx):
    """One minibatch step: (new params, new optimizer state, data loss)."""
    xb, yb = x[idx], y[idx]
    data_loss = lj.objective_terms(
      params,
      xb,
      yb,
      loss=config.loss,
      reg=config.reg,
      reg_strength=HP["reg_strength"],
      **options,
    )["data_loss"]
    grads = jax.grad(objective)(params, xb, yb)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, data_loss

  data_losses = []
  for _ in range(EPOCHS):
    key, batches = epoch_lib.epoch_batches(config, key, N)
    data_losses = []
    for idx in np.asarray(batches):
      params, opt_state, data_loss = step(params, opt_state, idx)
      data_losses.append(float(data_loss))
  return params, np.mean(data_losses)


def covering_cases():
  """Every loss with l2 and none; across the losses each reg meets every
  (schedule, batch) pair, and each loss meets both schedules and both batch
  modes: 8 compiled epochs instead of the 32 of the full product.
  """
  cases = []
  for i, loss in enumerate(sorted(losses.LOSSES)):
    schedule, batch = ("constant", "cosine")[i % 2], (B, None)[i // 2 % 2]
    cases.append((loss, "l2", schedule, batch))
    cases.append(
      (loss, "none", ("cosine", "constant")[i % 2], (None, B)[i // 2 % 2])
    )
  return cases


@pytest.mark.slow
@pytest.mark.parametrize("loss,reg,schedule,batch_size", covering_cases())
def test_train_epoch_equals_plain_loop(loss, reg, schedule, batch_size, x64):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(N, D)))
  y = jnp.asarray(rng.integers(0, C, size=N), jnp.int32)
  data = epoch_lib.DeviceData(x, y, x, y)
  config = epoch_lib.TrainConfig(
    loss=loss,
    reg=reg,
    optimizer="momentum",
    schedule=schedule,
    batch_size=batch_size,
    epochs=EPOCHS,
  )
  hparams = epoch_lib.make_hparams(**HP, dtype=jnp.float64)
  state = epoch_lib.init_state(config, hparams, 5, D, C, N, jnp.float64)
  epoch_fn = epoch_lib.make_epoch_fn(config)
  for _ in range(EPOCHS):
    state, metrics = epoch_fn(state, hparams, data)
  want, want_data_loss = reference_epochs(
    config, epoch_lib.init_state(config, hparams, 5, D, C, N).key, x, y
  )
  assert state.params["W"].dtype == jnp.float64
  np.testing.assert_allclose(state.params["W"], want["W"], rtol=0, atol=1e-10)
  np.testing.assert_allclose(state.params["b"], want["b"], rtol=0, atol=1e-10)
  np.testing.assert_allclose(
    metrics["data_loss"], want_data_loss, rtol=0, atol=1e-10
  )
  assert int(state.step) == EPOCHS * (1 if batch_size is None else N // B)
  # The updates moved W far beyond the tolerance: the check can fail.
  assert float(jnp.max(jnp.abs(want["W"]))) > 1e-3


def test_epoch_batches_cover_each_example_at_most_once():
  config = epoch_lib.TrainConfig(batch_size=5)
  key = epoch_lib.init_state(config, epoch_lib.make_hparams(), 0, 2, 2, 23).key
  next_key, batches = epoch_lib.epoch_batches(config, key, 23)
  assert batches.shape == (4, 5)
  flat = np.asarray(batches).ravel()
  assert len(set(flat)) == 20 and flat.min() >= 0 and flat.max() < 23
  _, again = epoch_lib.epoch_batches(config, next_key, 23)
  assert not np.array_equal(np.asarray(again), np.asarray(batches))
  full = epoch_lib.TrainConfig(batch_size=None)
  _, order = epoch_lib.epoch_batches(full, key, 23)
  np.testing.assert_array_equal(order, np.arange(23)[None])


@pytest.mark.slow
def test_sample_weight_weighs_each_minibatch_loss_and_accuracy(x64):
  """Each minibatch's data term is Σ w_i L_i / Σ w_i over its rows, and
  ``train_accuracy`` the mean of their weighted hit rates.
  """
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(N, D)))
  y = jnp.asarray(rng.integers(0, C, size=N), jnp.int32)
  weights = rng.uniform(0.2, 2.0, size=N)
  weights[:3] = 0.0
  config = epoch_lib.TrainConfig(
    loss="svm", reg="l2", optimizer="momentum", batch_size=B, epochs=1
  )
  hparams = epoch_lib.make_hparams(**HP, dtype=jnp.float64)
  state = epoch_lib.init_state(config, hparams, 5, D, C, N, jnp.float64)
  got, metrics = jax.jit(
    lambda s, w: epoch_lib.train_epoch(
      s,
      hparams,
      epoch_lib.DeviceData(x, y, x, y),
      config=config,
      sample_weight=w,
    )
  )(state, jnp.asarray(weights))

  opt = optax.sgd(HP["learning_rate"], momentum=HP["momentum"])
  params = jax.tree.map(jnp.zeros_like, state.params)
  opt_state = opt.init(params)
  objective = lambda p, xb, yb, wb: lj.objective(
    p,
    xb,
    yb,
    loss="svm",
    reg="l2",
    reg_strength=HP["reg_strength"],
    margin=HP["margin"],
    sample_weight=wb,
  )
  hit_rates = []
  _, batches = epoch_lib.epoch_batches(config, state.key, N)
  for idx in np.asarray(batches):
    xb, yb, wb = x[idx], y[idx], weights[idx]
    hits = np.argmax(np.asarray(xb @ params["W"] + params["b"]), 1) == yb
    hit_rates.append(np.sum(wb * hits) / np.sum(wb) if np.sum(wb) > 0 else 0.0)
    grads = jax.grad(objective)(params, xb, yb, wb)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(got.params["W"], params["W"], rtol=0, atol=1e-10)
  np.testing.assert_allclose(got.params["b"], params["b"], rtol=0, atol=1e-10)
  np.testing.assert_allclose(
    metrics["train_accuracy"], np.mean(hit_rates), rtol=0, atol=1e-12
  )
  # The weights matter: unweighted steps end elsewhere.
  plain, _ = jax.jit(
    lambda s: epoch_lib.train_epoch(
      s, hparams, epoch_lib.DeviceData(x, y, x, y), config=config
    )
  )(state)
  assert float(jnp.max(jnp.abs(plain.params["W"] - got.params["W"]))) > 1e-3
