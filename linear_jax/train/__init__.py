"""Training a linear classifier: one epoch, the epoch loop, one whole run.

- ``epoch``: the pure, jitted epoch (``train_epoch``) over the minibatches of
  a fresh permutation, its static ``TrainConfig`` and numeric ``HyperParams``;
- ``loop``: ``fit``, the host loop that compiles the epoch once, runs it,
  stops on divergence or early stopping, and reports progress;
- ``checkpoint``: one ``.npz`` per run, written atomically;
- ``run``: ``train_and_evaluate(config, workdir)``, data -> fit -> test ->
  workdir (metrics, summary, checkpoint, plots), and ``evaluate_checkpoint``.
"""

from linear_jax.train.epoch import (
  DeviceData,
  DivergedError,
  HyperParams,
  TrainConfig,
  TrainState,
  accuracy,
  epoch_batches,
  epoch_learning_rates,
  init_state,
  make_epoch_fn,
  make_hparams,
  train_epoch,
)
from linear_jax.train.loop import FitProgress, FitResult, fit
from linear_jax.train.run import (
  RunConfig,
  evaluate_checkpoint,
  restore,
  train_and_evaluate,
)

__all__ = [
  "accuracy",
  "DeviceData",
  "DivergedError",
  "epoch_batches",
  "epoch_learning_rates",
  "evaluate_checkpoint",
  "fit",
  "FitProgress",
  "FitResult",
  "HyperParams",
  "init_state",
  "make_epoch_fn",
  "make_hparams",
  "restore",
  "RunConfig",
  "train_and_evaluate",
  "train_epoch",
  "TrainConfig",
  "TrainState",
]
