"""The host-side epoch loop: compile once, run epochs, stop on divergence.

``fit`` calls the compiled epoch program once per epoch (one dispatch and one
small metrics fetch per epoch) so that it can report progress
(``linear_jax.progress``: the compile time, then ``epoch k/N`` with the ETA),
checkpoint, stop early, and stop at the first NaN/Inf loss with the last good
state.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from linear_jax import checks, sparse
from linear_jax import progress as progress_lib
from linear_jax.train import epoch as epoch_lib


@dataclasses.dataclass
class FitProgress:
  """Everything needed to resume: the state, per-epoch history and the best."""

  state: epoch_lib.TrainState
  history: list
  best_params: dict | None = None
  best_val_accuracy: float = -1.0
  epochs_since_best: int = 0

  @property
  def epochs_done(self) -> int:
    """Epochs run so far: one per entry of ``history``."""
    return len(self.history)


@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns: the progress (state, history, best params), the
  compile and epoch seconds, and why it stopped (divergence, early stopping).
  """

  progress: FitProgress
  compile_seconds: float
  train_seconds: float
  diverged_epoch: int | None = None
  divergence_message: str | None = None
  stopped_early: bool = False

  @property
  def params(self):
    """Final params (the best-on-validation ones when early stopping ran)."""
    p = self.progress
    return p.best_params if p.best_params is not None else p.state.params


class DeferredSignals:
  """Holds SIGINT and SIGTERM back inside ``with signals:`` blocks.

  ``install`` wraps the handlers Python runs for these signals (those that
  are Python callables: SIGINT's ``KeyboardInterrupt``, and SIGTERM where a
  program set one, as ``experiments/cli.py`` does); a signal that arrives
  inside a block is delivered to that handler when the block ends, one
  that arrives outside at once. So an interrupt lands between epochs,
  never between an epoch's state and its history or checkpoint. Works in
  the main thread only (elsewhere Python runs no signal handlers, and
  ``install`` does nothing). ``uninstall`` restores the handlers.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self._handlers: dict = {}
    self._pending: list = []
    self._inside = False

  def install(self) -> None:
    """Wraps the Python handlers of SIGINT and SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
      return
    for number in self.SIGNALS:
      handler = signal.getsignal(number)
      if callable(handler):
        self._handlers[number] = handler
        signal.signal(number, self._handle)

  def uninstall(self) -> None:
    """Restores the handlers ``install`` wrapped."""
    for number, handler in self._handlers.items():
      signal.signal(number, handler)
    self._handlers = {}

  def _handle(self, number, frame):
    if self._inside:
      self._pending.append((number, frame))
    else:
      self._handlers[number](number, frame)

  def __enter__(self) -> "DeferredSignals":
    self._inside = True
    return self

  def __exit__(self, *exc) -> None:
    self._inside = False
    pending, self._pending = self._pending, []
    for number, frame in pending:
      self._handlers[number](number, frame)


#: Features beyond this (in absolute value, as trained on) are far from the
#: unit scale that learning rates such as 1e-2 assume.
LARGE_FEATURE = 100.0
#: Below this a tenth of the learning rate is no advice: a float32 step that
#: small changes nothing.
SMALLEST_ADVICE = 1e-8


@dataclasses.dataclass(frozen=True)
class FeatureScale:
  """How large the training features are, as the optimizer sees them.

  Attributes:
    max_abs: the largest |x_ij|.
    feature: j, the column holding it.
    max_sq_norm: the largest squared row norm ‖x_i‖² (the curvature scale of
      the loss in W: steps much above 1/‖x‖² overshoot).
  """

  max_abs: float
  feature: int
  max_sq_norm: float


def feature_scale(data: epoch_lib.DeviceData) -> FeatureScale:
  """``FeatureScale`` of ``data.x_train`` (preprocessed as ``data.prepare``).

  Reductions only (per-column extremes, then row norms of x / max|x| so that
  the squares cannot overflow); no ``[N, D]`` copy is kept.
  """
  x = data.x_train
  if isinstance(x, sparse.CSRRows):  # preprocessed on the host: no prepare
    return _sparse_feature_scale(x)
  hi = data.prepare(jnp.max(x, axis=0, keepdims=True))[0]
  lo = data.prepare(jnp.min(x, axis=0, keepdims=True))[0]
  column = jnp.maximum(jnp.abs(hi), jnp.abs(lo))
  feature = int(jnp.argmax(column))
  max_abs = float(column[feature])
  if not max_abs > 0 or not np.isfinite(max_abs):
    return FeatureScale(max_abs, feature, max_abs**2)
  unit = jnp.max(jnp.sum(jnp.square(data.prepare(x) / max_abs), axis=1))
  return FeatureScale(max_abs, feature, float(unit) * max_abs**2)


def _sparse_feature_scale(x: sparse.CSRRows) -> FeatureScale:
  """``FeatureScale`` of device CSR rows, from their stored values alone."""
  values = np.abs(np.asarray(x.data, np.float64))
  if values.size == 0:
    return FeatureScale(0.0, 0, 0.0)
  first = int(np.argmax(values))
  rows = np.repeat(np.arange(x.shape[0]), np.diff(np.asarray(x.indptr)))
  sq_norms = np.bincount(rows, weights=values**2, minlength=x.shape[0])
  return FeatureScale(
    float(values[first]),
    int(np.asarray(x.indices)[first]),
    float(np.max(sq_norms)),
  )


def divergence_cause(
  *,
  learning_rate: float,
  optimizer: str,
  scale: FeatureScale,
  rescale: str = "--standardize",
) -> str:
  """What most likely made the loss NaN/Inf, and the fix, in one clause.

  The cause named is one the numbers show: features far from unit scale
  (``LARGE_FEATURE``), else a learning rate above 1/‖x‖², else the learning
  rate in general. lbfgs has no learning rate (it line-searches), so its
  advice is about the data and λ.

  Args:
    learning_rate: η as trained with.
    optimizer: the optimizer's name.
    scale: ``feature_scale`` of the training data.
    rescale: how the user rescales features (a flag, or a scikit-learn
      transformer), named in the advice.
  """
  large = scale.max_abs > LARGE_FEATURE
  where = (
    f"the features reach |x| = {scale.max_abs:.3g} (feature {scale.feature})"
  )
  if optimizer == "lbfgs":
    if large:
      return (
        f"{where}; rescale them to about unit size (e.g. {rescale}); lbfgs "
        "has no learning rate to lower"
      )
    return (
      "lbfgs has no learning rate to lower; raise reg_strength, or rescale "
      f"the features (e.g. {rescale})"
    )
  if large:
    return (
      f"{where}, so steps of learning rate {learning_rate:g} overflow "
      f"float32; rescale the features to about unit size (e.g. {rescale})"
    )
  stable = 1.0 / scale.max_sq_norm if scale.max_sq_norm > 0 else np.inf
  if learning_rate > stable:
    return (
      f"learning rate {learning_rate:g} is too large for these features "
      f"(‖x‖² up to {scale.max_sq_norm:.3g}); lower it below about "
      f"{stable:.1g}"
    )
  if learning_rate / 10 >= SMALLEST_ADVICE:
    return (
      f"learning rate {learning_rate:g} is likely too large; try "
      f"{learning_rate / 10:g}"
    )
  return (
    f"the learning rate ({learning_rate:g}) is already tiny and the features "
    f"are of moderate size (|x| ≤ {scale.max_abs:.3g}); lower reg_strength "
    "or check the data"
  )


def divergence_message(
  epoch: int,
  metrics: dict,
  *,
  learning_rate: float,
  optimizer: str,
  scale: FeatureScale,
) -> str:
  """The one-line report of a run whose loss became NaN/Inf at ``epoch``."""
  return (
    f"training diverged at epoch {epoch}: loss is "
    f"{float(metrics['data_loss']) + float(metrics['reg_loss'])} ("
    + divergence_cause(
      learning_rate=learning_rate, optimizer=optimizer, scale=scale
    )
    + "); kept the last good parameters"
  )


def fit(
  config: epoch_lib.TrainConfig,
  hparams: epoch_lib.HyperParams,
  data: epoch_lib.DeviceData,
  *,
  seed: int = 0,
  num_classes: int | None = None,
  progress: FitProgress | None = None,
  early_stopping_patience: int = 0,
  on_epoch: Callable[[FitProgress], None] | None = None,
  log: bool = True,
  epoch_fn=None,
) -> FitResult:
  """Trains for ``config.epochs`` epochs (continuing ``progress`` if given).

  Args:
    config: static ``TrainConfig``.
    hparams: ``HyperParams`` scalars.
    data: ``DeviceData``.
    seed: seeds the minibatch permutations (initial weights are zero).
    num_classes: C (default: max label + 1).
    progress: a ``FitProgress`` to resume from (e.g. from a checkpoint).
    early_stopping_patience: stop after this many epochs without a better
      validation accuracy, and return the best params (0: off); refused
      when the validation split is empty.
    on_epoch: called with the progress after each good epoch (checkpoints);
      SIGINT and SIGTERM wait for it and the epoch's bookkeeping to finish
      (``DeferredSignals``), so a ``KeyboardInterrupt`` out of ``fit``
      leaves ``progress`` whole: the caller can save it.
    log: report the compilation and each epoch (``linear_jax.progress``:
      a tqdm bar on a terminal, else one absl log line per epoch).
    epoch_fn: the jitted epoch (default ``linear_jax.train.make_epoch_fn(config)``);
      e.g. ``kernels.cpu_epoch.fused_epoch(config)``, which has the same
      signature and results.

  Returns:
    ``FitResult``; ``train_seconds`` counts the epochs only (no compilation,
    no data loading, no ``on_epoch`` work); ``diverged_epoch`` is set when a
    NaN/Inf loss stopped the run, with the state of the last good epoch kept.
  """
  config.validate()
  n, d = data.x_train.shape
  epoch_lib.check_lbfgs_full_batch(config, n)
  if early_stopping_patience and not data.y_val.shape[0]:
    raise checks.LinearJaxError(
      f"early_stopping_patience={early_stopping_patience} stops on "
      "validation accuracy, but the validation split is empty; give "
      "validation data or pass early_stopping_patience=0"
    )
  if num_classes is None:
    num_classes = int(jax.device_get(jnp.max(data.y_train))) + 1
  if progress is None:
    progress = FitProgress(
      epoch_lib.init_state(
        config, hparams, seed, d, num_classes, n, data.x_train.dtype
      ),
      [],
    )
  if epoch_fn is None:
    epoch_fn = epoch_lib.make_epoch_fn(config)
  with progress_lib.timed(
    f"compiling the {config.loss} epoch (first time)", log=log
  ) as timer:
    compiled = epoch_fn.lower(progress.state, hparams, data).compile()
  compile_seconds = timer.seconds
  bar = (
    progress_lib.Progress("epoch", config.epochs, start=progress.epochs_done)
    if log
    else None
  )
  train_seconds = 0.0
  result = FitResult(progress, compile_seconds, 0.0)
  lr = float(hparams.learning_rate)
  signals = DeferredSignals()
  try:
    signals.install()
    for epoch in range(progress.epochs_done + 1, config.epochs + 1):
      t0 = time.perf_counter()
      state, metrics = compiled(progress.state, hparams, data)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      seconds = time.perf_counter() - t0
      train_seconds += seconds
      if not epoch_lib.is_finite_metrics(metrics):
        result.diverged_epoch = epoch
        # Reported by the caller (train_and_evaluate raises it as one line).
        result.divergence_message = divergence_message(
          epoch,
          metrics,
          learning_rate=lr,
          optimizer=config.optimizer,
          scale=feature_scale(data),
        )
        break
      metrics.update(
        epoch=epoch, seconds=seconds, examples_per_second=n / seconds
      )
      with signals:  # an epoch's bookkeeping is never half done
        progress.state = state
        progress.history.append(metrics)
        if early_stopping_patience:
          if metrics["val_accuracy"] > progress.best_val_accuracy:
            progress.best_val_accuracy = metrics["val_accuracy"]
            progress.best_params = state.params
            progress.epochs_since_best = 0
          else:
            progress.epochs_since_best += 1
        if on_epoch is not None:
          on_epoch(progress)
      if bar is not None:
        bar.update(
          epoch,
          note=(
            f"loss {metrics['data_loss'] + metrics['reg_loss']:.4f} (data "
            f"{metrics['data_loss']:.4f} + reg {metrics['reg_loss']:.4f})  "
            f"train acc {metrics['train_accuracy']:.4f}  val acc "
            f"{metrics['val_accuracy']:.4f}  "
            f"{metrics['examples_per_second']:.0f} examples/s"
          ),
        )
      if (
        early_stopping_patience
        and progress.epochs_since_best >= early_stopping_patience
      ):
        result.stopped_early = True
        if log:
          logging.info(
            "early stopping at epoch %d: no better validation "
            "accuracy for %d epochs",
            epoch,
            early_stopping_patience,
          )
        break
  finally:
    signals.uninstall()
    if bar is not None:
      bar.close()
  result.train_seconds = train_seconds
  return result
