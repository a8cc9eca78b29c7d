"""Many plain-SGD configurations per epoch with delayed (blocked) weight updates.

A sweep of K configurations stores their weights as one wide matrix
``W [D, K·C]``. Stepping it one minibatch at a time (``vmapped_epoch``) reads
W for the scores and reads and writes it for the update at *every* step: for
K = 1,024 CIFAR-10 models that is 3 × 126 MB per step, more time on a GPU
than the step's matmul FLOPs. Plain SGD is linear in W, so k steps can share
one read and one write of W, exactly (up to float rounding).

With U_i = lr_i · ∂ℓ/∂S_i (``[B, K·C]``, ℓ the minibatch mean loss) and the
L2 decay d_i = 1 − 2 lr_i λ (one number per configuration; 1 without a
penalty), one step is W_{i+1} = d_i W_i − X_iᵀ U_i. Over a block of k steps
starting from W_0:

    W_j = A_j W_0 − Σ_{i<j} c_{ij} X_iᵀ U_i,  A_j = Π_{m<j} d_m,
                                               c_{ij} = Π_{i<m<j} d_m
    S_j = X_j W_j + b_j
        = A_j (X_j W_0) − Σ_{i<j} c_{ij} (X_j X_iᵀ) U_i + b_j

so a block computes P = X_blk W_0 (one ``[kB, D] @ [D, K·C]`` matmul that
reads W once) and the Gram matrix X_blk X_blkᵀ ``[kB, kB]`` (independent of
K); each step then needs only ``[B, jB] @ [jB, K·C]`` for its correction,
its loss gradient and its bias update; the block ends with one
W_k = A_k W_0 − X_blkᵀ V update (read and write W once). W traffic falls
k-fold; the extra FLOPs, as a fraction of stepping's 4·B·D·K·C per step, are

    (k − 1)·B / (4·D)     the corrections (triangular, averaged over a block)
  + k·B / (2·K·C)         the full Gram matrix, once per block
  + B / (2·D)             ⟨U_j, (X_j X_jᵀ) U_j⟩ for ‖W‖² (l2 only)

e.g. 29 % at k = 8 and 15 % at k = 4 for K = 1,024 CIFAR-10 models (B = 256,
D = 3,072, C = 10), but 90 % at k = 4 for K = 64: the Gram term only
amortizes over wide sweeps. On a CPU, where the sweep is FLOP-bound, the
trade does not pay (64 configurations ran slower at k = 4, BENCHMARKS.md),
and with k = 1 (one minibatch per epoch) it only adds the Gram matrix. On
GPUs it is opt-in (``engine.choose_algorithm``) until measured there.

The epoch is the same as ``linear_jax.train.train_epoch`` vmapped (same permutation,
same scores before each update, same metrics, same ``TrainState`` layout):
``data_loss`` and ``train_accuracy`` are running means over the minibatches,
``reg_loss`` = λ‖W_j‖² per step, tracked without reading W through
‖W_{j+1}‖² = d²‖W_j‖² − 2d⟨S_j − b_j, U_j⟩ + ⟨U_j, (X_j X_jᵀ) U_j⟩.
Columns of different configurations never mix, so a diverging configuration
leaves the others untouched.

Supported: optimizer ``sgd`` (any schedule), regularizer ``l2`` or ``none``,
any loss. ``supports(config)`` says whether a config qualifies.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from linear_jax import checks
from linear_jax import losses as losses_lib
from linear_jax.train import epoch as epoch_lib

#: Steps per block by default: W is read and written once per 8 steps.
DEFAULT_BLOCK_STEPS = 8


def supports(config: epoch_lib.TrainConfig) -> bool:
  """Whether ``blocked_epoch`` can train ``config`` (sgd with l2 or none)."""
  return config.optimizer == "sgd" and config.reg in ("l2", "none")


def steps_per_block(
  config: epoch_lib.TrainConfig,
  num_examples: int,
  block_steps: int = DEFAULT_BLOCK_STEPS,
) -> int:
  """k: ``block_steps``, at most the epoch's minibatches."""
  return min(block_steps, epoch_lib.steps_per_epoch(config, num_examples))


def _mean_loss_and_grad(loss: str):
  """(scores [B, C], labels [B], options) -> (mean loss, ∂mean/∂scores)."""
  loss_fn = losses_lib.get_loss(loss)

  def mean_loss(scores, labels, options):
    return jnp.mean(loss_fn(scores, labels, **options))

  return jax.value_and_grad(mean_loss)


def _per_config(values: jax.Array, num_classes: int) -> jax.Array:
  """``[K]`` -> ``[K·C]``: one number per configuration, repeated per class."""
  return jnp.repeat(values, num_classes)


def _config_sums(values: jax.Array, num_configs: int) -> jax.Array:
  """``[..., K·C]`` -> ``[K]``: sums over everything but the configuration."""
  return values.reshape(-1, num_configs, values.shape[-1] // num_configs).sum(
    axis=(0, 2)
  )


def _block(
  carry, rows, labels, *, hparams, config, num_classes, learning_rates, grad_fn
):
  """K SGD steps for all K configurations; W read once and written once.

  Args:
    carry: ``(w [D, K·C], b [K, C], sq_norm [K])``, ‖W‖² per configuration.
    rows: the block's prepared minibatches, ``[k, B, D]``.
    labels: ``[k, B]``.
    hparams: ``HyperParams`` of ``[K]`` arrays.
    config: static ``TrainConfig``.
    num_classes: C.
    learning_rates: ``[k, K]``, the scheduled rate of each step.
    grad_fn: ``_mean_loss_and_grad(config.loss)``.

  Returns:
    ``(carry, (data_loss [k, K], reg_loss [k, K], correct [k, K]))``.
  """
  w, b, sq_norm = carry
  k, batch, _ = rows.shape
  num_configs = b.shape[0]
  l2 = config.reg == "l2"
  flat = rows.reshape(k * batch, -1).astype(w.dtype)
  from_start = (flat @ w).reshape(k, batch, -1)  # X_j W_0
  gram = (flat @ flat.T).reshape(k, batch, k, batch)  # X_j X_iᵀ
  options = epoch_lib.loss_options(config.loss, hparams)
  per_config_grad = jax.vmap(grad_fn, in_axes=(1, None, 0), out_axes=(0, 1))

  decays: list[jax.Array] = []  # d_i [K]
  updates: list[jax.Array] = []  # U_i [B, K·C]
  outputs = []
  product = lambda ds: functools.reduce(
    jnp.multiply, ds, jnp.ones_like(b[:, 0])
  )
  for j in range(k):
    lr = learning_rates[j]
    # S_j − b_j = A_j (X_j W_0) − Σ_{i<j} c_ij (X_j X_iᵀ) U_i
    scores = _per_config(product(decays), num_classes) * from_start[j]
    if j:
      delayed = jnp.concatenate(
        [
          _per_config(product(decays[i + 1 :]), num_classes) * updates[i]
          for i in range(j)
        ]
      )
      scores = scores - gram[j, :, :j].reshape(batch, j * batch) @ delayed
    by_config = (scores + b.reshape(-1)).reshape(
      batch, num_configs, num_classes
    )
    loss, dscores = per_config_grad(by_config, labels[j], options)
    correct = jnp.mean(
      jnp.argmax(by_config, axis=-1) == labels[j][:, None], axis=0
    )
    update = (lr[None, :, None] * dscores).reshape(batch, -1)  # U_j
    if l2:
      decay = 1.0 - 2.0 * lr * hparams.reg_strength
      reg_loss = hparams.reg_strength * sq_norm
      cross = _config_sums(scores * update, num_configs)
      curvature = _config_sums(update * (gram[j, :, j] @ update), num_configs)
      sq_norm = decay**2 * sq_norm - 2.0 * decay * cross + curvature
    else:
      decay, reg_loss = jnp.ones_like(lr), jnp.zeros_like(lr)
    b = b - update.reshape(batch, num_configs, num_classes).sum(axis=0)
    decays.append(decay)
    updates.append(update)
    outputs.append((loss, reg_loss, correct))

  # W_k = A_k W_0 − X_blkᵀ [c_ik U_i]_i: one read and one write of W.
  delayed = jnp.concatenate(
    [
      _per_config(product(decays[i + 1 :]), num_classes) * updates[i]
      for i in range(k)
    ]
  )
  w = _per_config(product(decays), num_classes) * w - flat.T @ delayed
  data_loss, reg_loss, correct = (
    jnp.stack(v) for v in zip(*outputs, strict=True)
  )
  return (w, b, sq_norm), (data_loss, reg_loss, correct)


def blocked_epoch(
  config: epoch_lib.TrainConfig, block_steps: int = DEFAULT_BLOCK_STEPS
):
  """``(state[K], hparams[K], data) -> (state[K], metrics[K])``, one epoch.

  A drop-in for ``engine.vmapped_epoch(config)`` when ``supports(config)``:
  the same inputs, outputs and values (to float rounding), computed with
  one read and one write of the K configurations' weights per
  ``block_steps`` minibatches (module docstring).
  """
  if not supports(config):
    raise checks.LinearJaxError(
      f"the blocked sweep algorithm needs optimizer sgd and regularizer l2 "
      f"or none, got {config.optimizer}/{config.reg}; use the vmap "
      "algorithm (engine.vmapped_epoch)"
    )
  checks.AT_LEAST_ONE.check(block_steps, "block_steps")
  grad_fn = _mean_loss_and_grad(config.loss)

  def epoch(
    state: epoch_lib.TrainState,
    hparams: epoch_lib.HyperParams,
    data: epoch_lib.DeviceData,
  ):
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    batch = epoch_lib.effective_batch_size(config, n)
    per_epoch = epoch_lib.steps_per_epoch(config, n)
    key_data, order = epoch_lib.epoch_batches(config, state.key, n)
    num_configs, num_features, num_classes = state.params["W"].shape
    count = optax.tree_utils.tree_get(state.opt_state, "count")  # [K]
    learning_rates = jax.vmap(
      lambda lr, c: epoch_lib.epoch_learning_rates(config, lr, c, n), out_axes=1
    )(hparams.learning_rate, count)  # [steps, K]
    w = state.params["W"].transpose(1, 0, 2).reshape(num_features, -1)
    sq_norm = jnp.sum(jnp.square(state.params["W"]), axis=(1, 2))
    carry = (w, state.params["b"], sq_norm)
    block = lambda carry, rows, labels, lrs: _block(
      carry,
      data.prepare(rows),
      labels,
      hparams=hparams,
      config=config,
      num_classes=num_classes,
      learning_rates=lrs,
      grad_fn=grad_fn,
    )

    k = steps_per_block(config, n, block_steps)
    full, rest = divmod(per_epoch, k)
    pieces = []
    if full:
      idx = order[: full * k].reshape(full, k, batch)
      lrs = learning_rates[: full * k].reshape(full, k, num_configs)

      def scan_step(carry, xs):
        idx, lrs = xs
        return block(carry, x[idx], y[idx], lrs)

      carry, outs = jax.lax.scan(scan_step, carry, (idx, lrs))
      pieces.append(
        jax.tree.map(lambda a: a.reshape((full * k,) + a.shape[2:]), outs)
      )
    if rest:
      idx = order[full * k :]
      carry, outs = block(carry, x[idx], y[idx], learning_rates[full * k :])
      pieces.append(outs)
    data_loss, reg_loss, correct = (
      jnp.concatenate(v) for v in zip(*pieces, strict=True)
    )
    w, b, _ = carry
    params = {
      "W": w.reshape(num_features, num_configs, num_classes).transpose(1, 0, 2),
      "b": b,
    }
    val_accuracy = jax.vmap(epoch_lib.accuracy, in_axes=(0, None, None))(
      params, data.prepare(data.x_val), data.y_val
    )
    metrics = {
      "data_loss": data_loss.mean(0),
      "reg_loss": reg_loss.mean(0),
      "train_accuracy": correct.mean(0),
      "val_accuracy": val_accuracy,
    }
    opt_state = optax.tree_utils.tree_set(
      state.opt_state, count=count + per_epoch
    )
    return epoch_lib.TrainState(
      params, opt_state, key_data, state.step + per_epoch
    ), metrics

  return epoch
