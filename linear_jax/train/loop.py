"""The host-side epoch loop: compile once, run epochs, stop on divergence.

``fit`` calls the compiled epoch program once per epoch (one dispatch and one
small metrics fetch per epoch) so that it can report progress
(``linear_jax.progress``: the compile time, then ``epoch k/N`` with the ETA),
checkpoint, stop early, and stop at the first NaN/Inf loss with the last good
state.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
from absl import logging

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


def divergence_message(epoch: int, metrics: dict, learning_rate: float) -> str:
  return (
    f"training diverged at epoch {epoch}: loss is "
    f"{float(metrics['data_loss']) + float(metrics['reg_loss'])} "
    f"(learning rate {learning_rate:g} is likely too large; try "
    f"{learning_rate / 10:g}); kept the last good parameters"
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
      validation accuracy, and return the best params (0: off).
    on_epoch: called with the progress after each good epoch (checkpoints).
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
  try:
    for epoch in range(progress.epochs_done + 1, config.epochs + 1):
      t0 = time.perf_counter()
      state, metrics = compiled(progress.state, hparams, data)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      seconds = time.perf_counter() - t0
      train_seconds += seconds
      if not epoch_lib.is_finite_metrics(metrics):
        result.diverged_epoch = epoch
        # Reported by the caller (train_and_evaluate raises it as one line).
        result.divergence_message = divergence_message(epoch, metrics, lr)
        break
      metrics.update(
        epoch=epoch, seconds=seconds, examples_per_second=n / seconds
      )
      progress.state = state
      progress.history.append(metrics)
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
      if early_stopping_patience:
        if metrics["val_accuracy"] > progress.best_val_accuracy:
          progress.best_val_accuracy = metrics["val_accuracy"]
          progress.best_params = state.params
          progress.epochs_since_best = 0
        else:
          progress.epochs_since_best += 1
      if on_epoch is not None:
        on_epoch(progress)
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
    if bar is not None:
      bar.close()
  result.train_seconds = train_seconds
  return result
