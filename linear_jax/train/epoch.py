"""One training epoch of a linear classifier: pure functions + a small state.

Minimizes the full loss L = (1/N) Σ L_i + λR(W) (``linear_jax.objective``,
the one place it is reduced) with an optax optimizer. The data stay resident
on the device; each epoch is one ``jax.lax.scan`` over the minibatches of a
per-epoch permutation drawn inside jit; the epoch program is compiled once
and reused for every epoch (and, vmapped, for every configuration of a sweep).

Static choices (change the program): ``TrainConfig``. Numeric knobs (λ,
learning rate, Δ, ε, momentum, ...) live in ``HyperParams``, a pytree of
arrays, so ``vmap`` sweeps them without recompiling.
"""

from __future__ import annotations

import dataclasses
from typing import Generic, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from linear_jax import checks, optimizers, regularizers, shuffle, sparse
from linear_jax import losses as losses_lib
from linear_jax.objective import reduce_mean, terms_from_scores
from linear_jax.scores import linear_scores


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """What changes the compiled program (hashable, static)."""

  loss: str = "softmax"
  reg: str = "l2"
  optimizer: str = "momentum"
  schedule: str = "constant"
  batch_size: int | None = 256  # None (or ≥ N) means full batch
  epochs: int = 10
  unroll: int = 1  # lax.scan unroll: steps per loop iteration (speed only)

  def validate(self):
    """Checks the static choices (names, batch size); returns self."""
    losses_lib.get_loss(self.loss)
    regularizers.get_regularizer(self.reg)
    checks.lookup(
      dict.fromkeys(optimizers.OPTIMIZERS), self.optimizer, "optimizer"
    )
    checks.lookup(
      dict.fromkeys(optimizers.SCHEDULES), self.schedule, "schedule"
    )
    checks.AT_LEAST_ONE.check(self.batch_size, "batch_size")
    checks.AT_LEAST_ONE.check(self.epochs, "epochs")
    checks.AT_LEAST_ONE.check(self.unroll, "unroll")
    return self


#: The leaf type of a ``HyperParams``: arrays (device or host) in use, or
#: shapes or shardings where the tuple describes a pytree of its structure.
Leaf = TypeVar("Leaf")


class HyperParams(NamedTuple, Generic[Leaf]):
  """Numeric knobs, each a scalar array (or a ``[K]`` stack in a sweep)."""

  learning_rate: Leaf
  reg_strength: Leaf
  margin: Leaf
  label_smoothing: Leaf
  momentum: Leaf
  weight_decay: Leaf
  l1_ratio: Leaf


#: The rule each numeric knob follows; ``make_hparams`` checks it, and the
#: run and sweep configs state the same rule objects on their fields.
HPARAM_RULES = {
  "learning_rate": checks.Range(0.0, checks.MAX_LEARNING_RATE),
  "reg_strength": checks.NONNEGATIVE,
  "margin": checks.NONNEGATIVE,
  "label_smoothing": checks.UNIT_INTERVAL,
  "momentum": checks.UNIT_INTERVAL,
  "weight_decay": checks.NONNEGATIVE,
  "l1_ratio": checks.UNIT_INTERVAL,
}


def make_hparams(
  *,
  learning_rate=1e-3,
  reg_strength=0.0,
  margin=1.0,
  label_smoothing=0.0,
  momentum=0.9,
  weight_decay=1e-4,
  l1_ratio=0.5,
  dtype=jnp.float32,
) -> HyperParams:
  """``HyperParams`` from numbers, each checked against ``HPARAM_RULES``."""
  values = dict(
    learning_rate=learning_rate,
    reg_strength=reg_strength,
    margin=margin,
    label_smoothing=label_smoothing,
    momentum=momentum,
    weight_decay=weight_decay,
    l1_ratio=l1_ratio,
  )
  for name, value in values.items():
    HPARAM_RULES[name].check(value, name)
  return HyperParams(
    **{name: jnp.asarray(value, dtype) for name, value in values.items()}
  )


#: Rows as the epoch reads them: dense ``[N, D]``, device CSR, or an ELL block.
Rows = jax.Array | sparse.CSRRows | sparse.RowBlock
_R = TypeVar("_R", jax.Array, sparse.CSRRows, sparse.RowBlock, Rows)


class DeviceData(NamedTuple):
  """Training and validation arrays, resident on the device.

  ``x_*`` are either preprocessed float rows ``[N, D]`` (``shift`` and
  ``scale`` None), or raw rows (e.g. uint8 pixels, 4× fewer bytes to read per
  epoch) that each minibatch preprocesses on the fly as (x − shift) / scale,
  fused by XLA into the gather: the same values, computed in float32; or
  preprocessed sparse rows (``linear_jax.sparse.CSRRows``, from
  ``scipy.sparse`` inputs), whose minibatches ``x[idx]`` are
  ``sparse.RowBlock`` s.
  """

  x_train: jax.Array | sparse.CSRRows
  y_train: jax.Array
  x_val: jax.Array | sparse.CSRRows
  y_val: jax.Array
  shift: jax.Array | None = None
  scale: jax.Array | None = None

  @classmethod
  def put(
    cls,
    x_train,
    y_train,
    x_val,
    y_val,
    shift=None,
    scale=None,
    *,
    dtype=np.float32,
  ):
    """Copies to the device once (x keeps its dtype if raw, else ``dtype``:
    float32, or float64 under JAX's x64 mode; ``scipy.sparse`` x becomes
    ``sparse.CSRRows``).
    """
    raw = shift is not None or scale is not None
    if raw and sparse.is_sparse(x_train):
      raise checks.LinearJaxError(
        "sparse rows are preprocessed on the host; pass no shift or scale"
      )
    as_x = lambda a: (
      sparse.to_device(sparse.as_csr(a, "x"))
      if sparse.is_sparse(a)
      else jax.device_put(np.asarray(a) if raw else np.asarray(a, dtype))
    )
    as_vec = lambda a: (
      None if a is None else jax.device_put(np.asarray(a, np.float32))
    )
    return cls(
      as_x(x_train),
      jax.device_put(np.asarray(y_train, np.int32)),
      as_x(x_val),
      jax.device_put(np.asarray(y_val, np.int32)),
      as_vec(shift),
      as_vec(scale),
    )

  def prepare(self, rows: _R) -> _R:
    """Rows of ``x_*`` -> features (x − shift) / scale: float32 for raw
    integer rows, float rows keep their dtype (float64 in x64 tests);
    sparse rows as they are.
    """
    if isinstance(rows, (sparse.CSRRows, sparse.RowBlock)):
      return rows
    if not jnp.issubdtype(rows.dtype, jnp.floating):
      rows = rows.astype(jnp.float32)
    if self.shift is not None:
      rows = rows - self.shift
    if self.scale is not None:
      rows = rows / self.scale
    return rows

  @property
  def num_features(self) -> int:
    """D, the columns of ``x_train [N, D]``."""
    return self.x_train.shape[1]


class TrainState(NamedTuple):
  """What one epoch carries to the next: ``params`` ``{"W": [D, C], "b":
  [C]}``, the optax ``opt_state``, the permutation ``key`` and the step count.
  """

  params: dict
  opt_state: optax.OptState
  key: jax.Array  # raw uint32 key data, so it vmaps and saves simply
  step: jax.Array


def steps_per_epoch(config: TrainConfig, num_examples: int) -> int:
  """⌊N / B⌋ minibatches (the remainder is dropped; a new one each epoch)."""
  if config.batch_size is None or config.batch_size >= num_examples:
    return 1
  return num_examples // config.batch_size


def effective_batch_size(config: TrainConfig, num_examples: int) -> int:
  """B, or N for full-batch training (``batch_size`` None or ≥ N)."""
  if config.batch_size is None or config.batch_size >= num_examples:
    return num_examples
  return config.batch_size


def build_optimizer(
  config: TrainConfig, hparams: HyperParams, num_examples: int
):
  """``config``'s optax optimizer at ``hparams``' rate, momentum and decay."""
  per_epoch = steps_per_epoch(config, num_examples)
  return optimizers.make_optimizer(
    config.optimizer,
    learning_rate=hparams.learning_rate,
    schedule=config.schedule,
    total_steps=per_epoch * config.epochs,
    steps_per_epoch=per_epoch,
    momentum=hparams.momentum,
    weight_decay=hparams.weight_decay,
  )


def epoch_batches(config: TrainConfig, key_data: jax.Array, num_examples: int):
  """One epoch's minibatch indices, from the carried key.

  Returns:
    ``(next key data, batches [⌊N/B⌋, B] int32)``: the key is split once, and
    the other half draws a fresh permutation (``shuffle.permutation``) cut
    into minibatches; the full batch is 0 … N−1 in order. Every epoch
    implementation (``train_epoch``, the blocked sweep, the fused CPU epoch)
    draws its minibatches here, so they all see the same ones.
  """
  batch = effective_batch_size(config, num_examples)
  per_epoch = steps_per_epoch(config, num_examples)
  key, perm_key = jax.random.split(jax.random.wrap_key_data(key_data))
  if per_epoch == 1 and batch == num_examples:
    order = jnp.arange(num_examples, dtype=jnp.int32)
  else:
    order = shuffle.permutation(perm_key, num_examples)[: per_epoch * batch]
  return (
    jax.random.key_data(key),
    order.reshape(per_epoch, batch).astype(jnp.int32),
  )


def epoch_learning_rates(
  config: TrainConfig,
  learning_rate: jax.Array,
  count: jax.Array,
  num_examples: int,
) -> jax.Array:
  """lr_t = learning_rate · schedule(count + t) for the epoch's steps ``[S]``:
  the rates optax's ``scale_by_schedule`` applies (``count`` is its step
  counter at the start of the epoch).
  """
  per_epoch = steps_per_epoch(config, num_examples)
  shape = optimizers.unit_schedule(
    config.schedule, per_epoch * config.epochs, per_epoch
  )
  steps = count + jnp.arange(per_epoch, dtype=count.dtype)
  return learning_rate * jax.vmap(shape)(steps)


def init_state(
  config: TrainConfig,
  hparams: HyperParams,
  seed,
  num_features: int,
  num_classes: int,
  num_examples: int,
  dtype=jnp.float32,
) -> TrainState:
  """Zero weights (the convex problem needs no symmetry breaking)."""
  params = {
    "W": jnp.zeros((num_features, num_classes), dtype),
    "b": jnp.zeros((num_classes,), dtype),
  }
  opt = build_optimizer(config, hparams, num_examples)
  key = jax.random.key_data(jax.random.key(seed))
  return TrainState(params, opt.init(params), key, jnp.zeros((), jnp.int32))


def loss_options(loss: str, hparams: HyperParams) -> dict:
  """The keyword options ``loss`` takes (``losses.LOSS_OPTIONS``), valued
  from ``hparams``, e.g. ``{"margin": Δ}`` for the hinge losses.
  """
  return losses_lib.loss_options(
    loss, margin=hparams.margin, label_smoothing=hparams.label_smoothing
  )


def batch_objective(
  config: TrainConfig, hparams: HyperParams, class_weight=None
):
  """params, x, y[, sample_weight] -> (L, (terms, scores)), for
  ``value_and_grad``.

  ``class_weight`` (optional ``[C]``) weights each example's loss by its
  class, and ``sample_weight`` (optional ``[B]``, the minibatch's) by
  example: the data term is then Σ w_i L_i / Σ w_i over the minibatch.
  """

  def fn(params, x, y, sample_weight=None):
    scores = linear_scores(params, x)
    terms = terms_from_scores(
      params,
      scores,
      y,
      loss=config.loss,
      reg=config.reg,
      reg_strength=hparams.reg_strength,
      sample_weight=sample_weight,
      class_weight=class_weight,
      l1_ratio=hparams.l1_ratio,
      **loss_options(config.loss, hparams),
    )
    return terms["data_loss"] + terms["reg_loss"], (terms, scores)

  return fn


def accuracy(params: dict, x: Rows, y: jax.Array) -> jax.Array:
  """Fraction of argmax_j s_j == y (sparse rows: in row blocks)."""
  if isinstance(x, sparse.CSRRows):
    return sparse.accuracy(params, x, y)
  if isinstance(x, sparse.RowBlock):
    return jnp.mean(jnp.argmax(sparse.scores(params, x), axis=-1) == y)
  return jnp.mean(jnp.argmax(linear_scores(params, x), axis=-1) == y)


def train_epoch(
  state: TrainState,
  hparams: HyperParams,
  data: DeviceData,
  *,
  config: TrainConfig,
  class_weight: jax.Array | None = None,
  sample_weight: jax.Array | None = None,
):
  """One epoch: a scan over the minibatches of a fresh permutation.

  Args:
    state: ``TrainState``.
    hparams: ``HyperParams`` (scalars).
    data: ``DeviceData`` (train ``[N, D]``, ``[N]`` and validation).
    config: static ``TrainConfig``.
    class_weight: optional ``[C]`` non-negative weight of each class's
      examples in the data term (``linear_jax.objective``); an array, so new
      weights do not recompile.
    sample_weight: optional ``[N]`` non-negative weight of each training
      example in the data term (multiplying its class's).
      ``train_accuracy`` is then each minibatch's fraction weighted by
      ``sample_weight`` alone (0 for a minibatch whose weights are all 0).
      In a full-batch epoch an example of weight 0 changes nothing; in
      minibatches it still takes a place in its batch.

  Returns:
    ``(state, metrics)``; metrics hold the epoch's running means over its
    minibatches of ``data_loss``, ``reg_loss`` and ``train_accuracy`` (scores
    before each update), and ``val_accuracy`` after the epoch.
  """
  x, y = data.x_train, data.y_train
  n = x.shape[0]
  batch = effective_batch_size(config, n)
  per_epoch = steps_per_epoch(config, n)
  key_data, batches = epoch_batches(config, state.key, n)
  full_batch = per_epoch == 1 and batch == n  # no gathered copy of X
  opt = build_optimizer(config, hparams, n)
  objective_fn = batch_objective(config, hparams, class_weight)
  grad_fn = jax.value_and_grad(objective_fn, has_aux=True)

  def step(carry, idx):
    params, opt_state = carry
    if full_batch:
      xb, yb, wb = data.prepare(x), y, sample_weight
    else:
      xb, yb = data.prepare(x[idx]), y[idx]
      wb = None if sample_weight is None else sample_weight[idx]
    (value, (terms, scores)), grads = grad_fn(params, xb, yb, wb)
    updates, opt_state = opt.update(
      grads,
      opt_state,
      params,
      value=value,
      grad=grads,
      value_fn=lambda p: objective_fn(p, xb, yb, wb)[0],
    )
    params = optax.apply_updates(params, updates)
    hits = jnp.argmax(scores, axis=-1) == yb
    correct = (
      jnp.mean(hits)
      if wb is None
      else reduce_mean(hits.astype(scores.dtype), wb)
    )
    return (params, opt_state), (terms["data_loss"], terms["reg_loss"], correct)

  (params, opt_state), (data_loss, reg_loss, correct) = jax.lax.scan(
    step, (state.params, state.opt_state), batches, unroll=config.unroll
  )
  metrics = {
    "data_loss": jnp.mean(data_loss),
    "reg_loss": jnp.mean(reg_loss),
    "train_accuracy": jnp.mean(correct),
    "val_accuracy": accuracy(params, data.prepare(data.x_val), data.y_val),
  }
  new_state = TrainState(params, opt_state, key_data, state.step + per_epoch)
  return new_state, metrics


def make_epoch_fn(config: TrainConfig):
  """``jit(train_epoch)`` for one static config: compiled once, reused."""
  return jax.jit(
    lambda state, hparams, data: train_epoch(
      state, hparams, data, config=config
    )
  )


def is_finite_metrics(metrics: dict) -> bool:
  """Whether both the data loss and the regularization loss are finite."""
  return bool(
    np.isfinite(float(metrics["data_loss"]))
    and np.isfinite(float(metrics["reg_loss"]))
  )


class DivergedError(checks.LinearJaxError):
  """The loss became NaN or Inf."""


def check_lbfgs_full_batch(config: TrainConfig, num_examples: int):
  """Raises ``LinearJaxError`` if a full-batch optimizer gets minibatches."""
  if (
    config.optimizer in optimizers.FULL_BATCH_ONLY
    and effective_batch_size(config, num_examples) != num_examples
  ):
    raise checks.LinearJaxError(
      f"optimizer {config.optimizer!r} needs the full batch; pass "
      "--full_batch or pick sgd/momentum/nesterov/adam/adamw"
    )
