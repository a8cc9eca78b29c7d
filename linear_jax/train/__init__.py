"""Training a linear classifier: one epoch, the epoch loop, one whole run.

- ``epoch``: the pure, jitted epoch (``train_epoch``) over the minibatches of
  a fresh permutation, its static ``TrainConfig`` and numeric ``HyperParams``;
- ``loop``: ``fit``, the host loop that compiles the epoch once, runs it,
  stops on divergence or early stopping, and reports progress;
- ``checkpoint``: one ``.npz`` per run, written atomically;
- ``run``: ``train_and_evaluate(config, workdir)``, data -> fit -> test ->
  workdir (metrics, summary, checkpoint, plots), and ``evaluate_checkpoint``.
"""

from linear_jax.train.epoch import DeviceData
from linear_jax.train.epoch import DivergedError
from linear_jax.train.epoch import HyperParams
from linear_jax.train.epoch import TrainConfig
from linear_jax.train.epoch import TrainState
from linear_jax.train.epoch import accuracy
from linear_jax.train.epoch import epoch_batches
from linear_jax.train.epoch import epoch_learning_rates
from linear_jax.train.epoch import init_state
from linear_jax.train.epoch import make_epoch_fn
from linear_jax.train.epoch import make_hparams
from linear_jax.train.epoch import train_epoch
from linear_jax.train.loop import FitProgress
from linear_jax.train.loop import FitResult
from linear_jax.train.loop import fit
from linear_jax.train.run import RunConfig
from linear_jax.train.run import evaluate_checkpoint
from linear_jax.train.run import restore
from linear_jax.train.run import train_and_evaluate
