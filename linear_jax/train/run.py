"""One training run end to end: ``train_and_evaluate(config, workdir)``.

    from linear_jax import train
    summary = train.train_and_evaluate(
        train.RunConfig(dataset="digits", loss="svm", epochs=5), "runs/svm")
    summary["test_accuracy"]

loads the data, trains with ``fit``, evaluates the final (or, with early
stopping, the best) parameters once on the test split and writes ``workdir``:

- ``checkpoint.npz``: state, best params, preprocessing statistics, config
  and the epoch it holds; written once before the first epoch (so any
  workdir with outputs has one), then at most every ``checkpoint_seconds``,
  at the end (done, stopped early, or diverged: the last good epoch), and
  on SIGINT (SIGTERM too in the binaries) after the epoch in flight;
- ``metrics.jsonl``: one JSON object per epoch (epoch, data_loss, reg_loss,
  train_accuracy, val_accuracy, seconds, examples_per_second), appended
  as each epoch ends and fsynced before each checkpoint, so it may run
  ahead of the checkpoint, never behind;
- ``summary.json``: test/val accuracy, ``train_seconds`` (epochs only, after
  compilation, data loading excluded), ``compile_seconds``, config, device;
  strict JSON: a number that is not finite is ``null`` with its reason in
  ``null_reasons``;
- ``curves.png``, ``templates.png`` (image data) or ``regions.png`` (2-D data).

The run holds ``workdir``'s lock (``linear_jax.workdir.workdir_lock``) from
its first look at the folder to its last write: a second run there is
refused in one line. Every file goes through ``linear_jax.io``. A run
killed at any point resumes (``resume=True``) bit-identically to one never
killed: the history is read back from ``metrics.jsonl`` up to the
checkpoint's epoch, and the lines after it, which no saved state backs, are
dropped and recomputed. ``RunConfig`` is the one statement of a run's
settings: each field's help and rule generate the flags of
``experiments/train.py``, and ``RunConfig.validate`` checks them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from linear_jax import (
  budget,
  checks,
  io,
  losses,
  optimizers,
  plots,
  regularizers,
  sparse,
)
from linear_jax.checks import option
from linear_jax.train import checkpoint, loop
from linear_jax.train import epoch as epoch_lib
from linear_jax.workdir import workdir_lock

_RULES = epoch_lib.HPARAM_RULES
METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
#: What a run writes; an earlier run's files are never replaced without resume.
OUTPUTS = (checkpoint.CHECKPOINT_NAME, METRICS_NAME, SUMMARY_NAME)
#: Settings a resumed run must share with its checkpoint.
RESUME_KEYS = (
  "dataset",
  "loss",
  "reg",
  "optimizer",
  "batch_size",
  "full_batch",
  "schedule",
  "standardize",
  "normalize_rows",
  "mirror_train",
  "validation_size",
  "seed",
)


@dataclasses.dataclass
class RunConfig:
  """Every setting of a training run, each with its help text and rule."""

  dataset: str = option(
    "digits",
    "a tfds name (cifar10, mnist, ...), folder:PATH, or an "
    "embedded name; see --list_datasets",
  )
  data_dir: str | None = option(None, "tfds data_dir / cache directory")
  loss: str = option("softmax", "loss L_i", choices=sorted(losses.LOSSES))
  margin: float = option(
    1.0, "hinge margin Δ (svm losses)", rule=_RULES["margin"]
  )
  label_smoothing: float = option(
    0.0, "ε (softmax)", rule=_RULES["label_smoothing"]
  )
  reg: str = option(
    "l2", "regularizer R(W)", choices=sorted(regularizers.REGULARIZERS)
  )
  reg_strength: float = option(1e-4, "λ", rule=_RULES["reg_strength"])
  optimizer: str = option(
    "momentum", "optax optimizer", choices=list(optimizers.OPTIMIZERS)
  )
  learning_rate: float = option(
    1e-2, "learning rate", rule=checks.LEARNING_RATE
  )
  momentum: float = option(
    0.9, "momentum (momentum, nesterov)", rule=_RULES["momentum"]
  )
  weight_decay: float = option(
    1e-4, "decoupled weight decay (adamw)", rule=_RULES["weight_decay"]
  )
  schedule: str = option(
    "constant", "learning-rate schedule", choices=list(optimizers.SCHEDULES)
  )
  batch_size: int = option(256, "minibatch size", rule=checks.AT_LEAST_ONE)
  full_batch: bool = option(
    False,
    "use the whole training set per step "
    "(overrides --batch_size; needed by lbfgs)",
  )
  epochs: int = option(10, "epochs", rule=checks.AT_LEAST_ONE)
  seed: int = option(
    0, "seed of the split and the permutations", rule=checks.SEED
  )
  standardize: bool = option(False, "divide features by their train std")
  normalize_rows: bool = option(
    False, "scale each example to unit L2 norm (the TF-IDF habit)"
  )
  mirror_train: bool = option(
    False,
    "augment training images with their "
    "left-right mirror images (2N rows per epoch)",
  )
  validation_size: int | None = option(
    None, "held-out examples carved from train", rule=checks.NONNEGATIVE
  )
  early_stopping_patience: int = option(
    0,
    "stop after this many epochs without better val accuracy (0: off; "
    "needs a validation split, so not with validation_size=0)",
    rule=checks.NONNEGATIVE,
  )
  plots: bool = option(True, "write PNG plots")
  checkpoint_seconds: float = option(
    60.0,
    "save the checkpoint at most this often (and always at the end and on "
    "SIGINT/SIGTERM); 0: after every epoch",
    rule=checks.NONNEGATIVE,
  )
  memory_budget: str | None = option(None, budget.FLAG_HELP)

  def validate(self) -> "RunConfig":
    """Checks every field's rule and the static choices; one line if bad."""
    checks.check_options(self)
    if self.early_stopping_patience and self.validation_size == 0:
      raise checks.LinearJaxError(
        f"early_stopping_patience={self.early_stopping_patience} stops on "
        "validation accuracy, but validation_size=0 leaves no validation "
        "split; set validation_size ≥ 1 (or leave it unset) or "
        "early_stopping_patience=0"
      )
    self.train_config()
    budget.memory_budget(self.memory_budget)  # a size, if given
    return self

  def train_config(self) -> epoch_lib.TrainConfig:
    """The static part of the run (loss, regularizer, optimizer, ...)."""
    return epoch_lib.TrainConfig(
      loss=self.loss,
      reg=self.reg,
      optimizer=self.optimizer,
      schedule=self.schedule,
      batch_size=None if self.full_batch else self.batch_size,
      epochs=self.epochs,
    ).validate()

  def hparams(self) -> epoch_lib.HyperParams:
    """The numeric knobs (learning rate, λ, Δ, ε, ...) as arrays."""
    return epoch_lib.make_hparams(
      learning_rate=self.learning_rate,
      reg_strength=self.reg_strength,
      margin=self.margin,
      label_smoothing=self.label_smoothing,
      momentum=self.momentum,
      weight_decay=self.weight_decay,
    )

  @classmethod
  def from_dict(cls, values: dict) -> "RunConfig":
    """A config from saved values (keys it does not know are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def device_description() -> dict:
  """``{"platform", "kind", "count"}`` of the default device."""
  device = jax.devices()[0]
  return {
    "platform": device.platform,
    "kind": device.device_kind,
    "count": jax.device_count(),
  }


def load_data(config, *, shard: bool = False):
  """The dataset a run or sweep config names (``linear_jax.data``), loaded
  within the config's ``memory_budget`` (``linear_jax.budget``); ``shard``:
  this process's rows only (``linear_jax.data.from_raw``).
  """
  from linear_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  with budget.limited(getattr(config, "memory_budget", None)):
    return data_lib.load_dataset(
      config.dataset,
      data_dir=config.data_dir,
      seed=config.seed,
      standardize=config.standardize,
      normalize_rows=getattr(config, "normalize_rows", False),
      validation_size=config.validation_size,
      mirror_train=getattr(config, "mirror_train", False),
      shard=shard,
    )


def model_description(dataset) -> dict:
  """What ``linear_jax.model.load_model`` needs besides the arrays, saved in
  the checkpoint's metadata: class names, D, the raw image shape.
  """
  out = {
    "class_names": [str(c) for c in dataset.class_names],
    "num_features": int(dataset.num_features),
    "image_shape": (
      None
      if dataset.image_shape is None
      else [int(v) for v in dataset.image_shape]
    ),
  }
  if dataset.svmlight_zero_based is not None:
    out["svmlight_zero_based"] = dataset.svmlight_zero_based
  return out


def _template(config: RunConfig, dataset) -> epoch_lib.TrainState:
  return epoch_lib.init_state(
    config.train_config(),
    config.hparams(),
    config.seed,
    dataset.num_features,
    dataset.num_classes,
    len(dataset.y_train),
  )


def _check_same_run(path: str, saved: dict, config: RunConfig) -> None:
  for key in RESUME_KEYS:
    if key in saved and saved[key] != getattr(config, key):
      raise checks.LinearJaxError(
        f"--resume: checkpoint {path} was trained with {key}={saved[key]!r},"
        f" not {getattr(config, key)!r}; use the same flags or a new "
        "--workdir"
      )
  # A decaying schedule's horizon is epochs × steps: more epochs would
  # change every rate already applied.
  if (
    config.schedule != "constant"
    and "epochs" in saved
    and saved["epochs"] != config.epochs
  ):
    raise checks.LinearJaxError(
      f"--resume: checkpoint {path} was trained for epochs="
      f"{saved['epochs']} with the {config.schedule} schedule, whose rates "
      f"depend on the number of epochs; resume with --epochs="
      f"{saved['epochs']}, or use --schedule=constant to train longer"
    )


def _check_epochs_ahead(path: str, meta: dict, config: RunConfig) -> None:
  """Refuses ``--epochs`` below the epochs the checkpoint has already run:
  there is nothing to train, and the summary would report ``epochs`` < the
  epochs run.
  """
  done = int(meta.get("epoch", len(meta.get("history", []))))
  if done > config.epochs:
    raise checks.LinearJaxError(
      f"--resume: {path} has run {done} epochs, more than --epochs="
      f"{config.epochs}; pass --epochs={done} or more to continue it, or "
      "--restore to evaluate it as it is (nothing was changed)"
    )


def _check_same_data(
  path: str, model: dict | None, stats: dict | None, dataset
) -> None:
  """Refuses data other than the checkpoint's: its model description
  (features, classes) and its preprocessing statistics, fitted on the
  training split, must match the data loaded now.
  """
  problem = None
  if model:
    now = model_description(dataset)
    for key in ("num_features", "class_names"):
      if key in model and model[key] != now[key]:
        problem = f"{key} {model[key]!r} then, {now[key]!r} now"
        break
  for name, value in (stats or {}).items():
    current = getattr(dataset.stats, name, None)
    # Refitted on the same rows the statistics agree to float32 rounding
    # (another CPU may sum in another order); one changed row moves them more.
    if current is not None and (
      np.shape(current) != np.shape(value)
      or not np.allclose(current, value, rtol=1e-6, atol=0)
    ):
      problem = f"the training split's {name} differs"
      break
  if problem:
    raise checks.LinearJaxError(
      f"{path} was trained on other data ({problem}); use the data it was "
      "trained on, or a new --workdir"
    )


def _restore_progress(workdir: str, config: RunConfig, dataset):
  """The checkpoint's ``FitProgress``, its history read from metrics.jsonl."""
  path = os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  meta = checkpoint.load_metadata(path)
  _check_same_run(path, meta.get("config", {}), config)  # before unflattening
  _check_epochs_ahead(path, meta, config)
  _check_same_data(path, meta.get("model"), None, dataset)
  template = _template(config, dataset)
  state, best, stats, meta = checkpoint.load(path, template, template.params)
  _check_same_data(path, None, stats, dataset)
  saved_history = meta.get("history", [])  # checkpoints that carried it
  epochs = int(meta.get("epoch", len(saved_history)))
  metrics_path = os.path.join(workdir, METRICS_NAME)
  history = (
    io.read_jsonl(metrics_path) if os.path.exists(metrics_path) else []
  )[:epochs]
  if len(history) < epochs and len(saved_history) == epochs:
    history = list(saved_history)
  if len(history) == epochs - 1 and meta.get("last_metrics"):
    history.append(meta["last_metrics"])  # killed between the two writes
  if len(history) != epochs:
    raise checks.LinearJaxError(
      f"{metrics_path} has {len(history)} epochs but {path} holds epoch "
      f"{epochs}; restore metrics.jsonl or choose a new --workdir"
    )
  # Lines after the checkpoint's epoch belong to no saved state: drop them.
  io.atomic_write(
    metrics_path, "".join(io.dumps(row) + "\n" for row in history)
  )
  return loop.FitProgress(
    jax.device_put(state),
    history,
    best,
    meta.get("best_val_accuracy", -1.0),
    meta.get("epochs_since_best", 0),
  )


def restore(
  workdir: str,
  *,
  data_dir: str | None = None,
  memory_budget: str | None = None,
):
  """``(config, dataset, params)`` of ``workdir``'s checkpoint: the saved
  preprocessing statistics checked against freshly loaded data, and the
  best params if early stopping kept them, else the last. ``data_dir`` and
  ``memory_budget`` replace the saved run's when given.
  """
  path = os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  meta = checkpoint.load_metadata(path)
  config = RunConfig.from_dict(meta["config"])
  config.data_dir = data_dir or config.data_dir
  config.memory_budget = memory_budget or config.memory_budget
  dataset = load_data(config)
  template = _template(config, dataset)
  _check_same_data(path, meta.get("model"), None, dataset)
  state, best, stats, _ = checkpoint.load(path, template, template.params)
  _check_same_data(path, None, stats, dataset)
  return config, dataset, best if best is not None else state.params


def evaluate_checkpoint(
  workdir: str,
  *,
  data_dir: str | None = None,
  memory_budget: str | None = None,
) -> dict:
  """Reloads ``workdir``'s checkpoint (``restore``) and evaluates it on the
  test split; returns ``test_accuracy``, ``epochs`` and ``checkpoint``.
  """
  _, dataset, params = restore(
    workdir, data_dir=data_dir, memory_budget=memory_budget
  )
  meta = checkpoint.load_metadata(
    os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  )
  test = float(
    epoch_lib.accuracy(
      params, sparse.device_rows(dataset.x_test), jnp.asarray(dataset.y_test)
    )
  )
  epochs = meta.get("epoch", len(meta.get("history", [])))
  return {
    "test_accuracy": test,
    "epochs": int(epochs),
    "checkpoint": os.path.join(workdir, checkpoint.CHECKPOINT_NAME),
  }


def prepare_workdir(workdir: str, *, resume: bool) -> bool:
  """Creates ``workdir`` and says whether to resume from its checkpoint.

  Refuses a file in its place, and earlier outputs unless resuming. A workdir
  without a checkpoint starts fresh, also with ``resume``, unless it holds
  other outputs: those are listed, never overwritten. Temporaries left by a
  killed write are removed.

  Returns:
    True when ``workdir`` has a checkpoint to resume from.
  """
  if os.path.lexists(workdir) and not os.path.isdir(workdir):
    raise checks.LinearJaxError(
      f"--workdir {workdir} is a file, not a folder; choose another --workdir"
    )
  present = [
    name for name in OUTPUTS if os.path.lexists(os.path.join(workdir, name))
  ]
  has_checkpoint = checkpoint.CHECKPOINT_NAME in present
  if present and not has_checkpoint:
    raise checks.LinearJaxError(
      f"{workdir} holds {', '.join(present)} but no "
      f"{checkpoint.CHECKPOINT_NAME}, so no run can continue there; remove "
      f"{', '.join(present)} or choose a new --workdir (nothing was "
      "overwritten)"
    )
  if present and not resume:
    raise checks.LinearJaxError(
      f"{os.path.join(workdir, present[0])} exists; pass --resume to "
      "continue that run or choose a new --workdir (nothing was overwritten)"
    )
  os.makedirs(workdir, exist_ok=True)
  # Accepted: clear what killed writes left (ours only, never the user's).
  stale = io.remove_temporaries(workdir) + [
    name
    for name in sorted(os.listdir(workdir))
    if fnmatch.fnmatch(name, ".checkpoint-*.npz.tmp")
    and os.path.isfile(os.path.join(workdir, name))
  ]
  for name in stale:
    if os.path.lexists(os.path.join(workdir, name)):
      os.remove(os.path.join(workdir, name))
    logging.info("removed %s, left by an interrupted write", name)
  if resume and not has_checkpoint:
    logging.info("--resume: no checkpoint in %s yet; starting fresh", workdir)
  return has_checkpoint


def _finite_summary(summary: dict, reasons: dict) -> dict:
  """``summary`` with each non-finite number None and its reason recorded."""
  null_reasons = {}
  for key, value in summary.items():
    if isinstance(value, float) and not math.isfinite(value):
      summary[key] = None
      null_reasons[key] = reasons.get(key, f"{key} was {value}")
  if null_reasons:
    summary["null_reasons"] = null_reasons
  return summary


def train_and_evaluate(
  config: RunConfig, workdir: str, *, resume: bool = False
) -> dict:
  """Trains, evaluates on test once, writes ``workdir``; returns the summary.

  Args:
    config: the run's settings (validated here).
    workdir: the output folder (module docstring).
    resume: continue from ``workdir``'s checkpoint (the same settings, more
      epochs or another learning rate are fine).

  Returns:
    The summary that ``summary.json`` holds.

  Raises:
    LinearJaxError: one line, on bad settings, a workdir that holds another
      run or is in use by one (``linear_jax.workdir``), or divergence
      (``DivergedError``, after the summary is written).
  """
  config.validate()
  with workdir_lock(workdir):  # one writer from the first look to the end
    return _train_and_evaluate(config, workdir, resume=resume)


def _train_and_evaluate(config: RunConfig, workdir: str, *, resume: bool):
  tc = config.train_config()
  hparams = config.hparams()
  has_checkpoint = prepare_workdir(workdir, resume=resume)
  t0 = time.perf_counter()
  dataset = load_data(config)
  data = epoch_lib.DeviceData.put(
    dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val
  )
  load_seconds = time.perf_counter() - t0
  ckpt_path = os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  metrics_path = os.path.join(workdir, METRICS_NAME)
  stats = dataset.stats.to_dict()
  config_dict = dataclasses.asdict(config)
  model = model_description(dataset)

  def save(progress: loop.FitProgress):
    checkpoint.save(
      ckpt_path,
      state=progress.state,
      best_params=progress.best_params,
      stats=stats,
      metadata={
        "config": config_dict,
        "model": model,
        "epoch": progress.epochs_done,
        "last_metrics": (progress.history[-1] if progress.history else None),
        "best_val_accuracy": progress.best_val_accuracy,
        "epochs_since_best": progress.epochs_since_best,
      },
    )

  if has_checkpoint:
    progress = _restore_progress(workdir, config, dataset)
    logging.info(
      "resuming from %s after epoch %d", ckpt_path, progress.epochs_done
    )
  else:
    epoch_lib.check_lbfgs_full_batch(tc, len(dataset.y_train))
    progress = loop.FitProgress(
      epoch_lib.init_state(
        tc,
        hparams,
        config.seed,
        dataset.num_features,
        dataset.num_classes,
        len(dataset.y_train),
      ),
      [],
    )
    save(progress)  # epoch 0: the workdir always has a checkpoint
  with io.JsonLines(metrics_path) as metrics:
    saved = {"epoch": progress.epochs_done, "time": time.monotonic()}

    def save_now(progress: loop.FitProgress):
      metrics.sync()  # the lines up to the checkpoint's epoch: durable first
      save(progress)
      saved.update(epoch=progress.epochs_done, time=time.monotonic())

    def on_epoch(progress: loop.FitProgress):
      metrics.write(progress.history[-1])  # lines run ahead of the checkpoint
      if time.monotonic() - saved["time"] >= config.checkpoint_seconds:
        save_now(progress)

    try:
      result = loop.fit(
        tc,
        hparams,
        data,
        seed=config.seed,
        num_classes=dataset.num_classes,
        progress=progress,
        early_stopping_patience=config.early_stopping_patience,
        on_epoch=on_epoch,
      )
    except KeyboardInterrupt:  # SIGINT (and SIGTERM in the binaries)
      # fit lets signals in only between epochs: progress is whole.
      if progress.epochs_done != saved["epoch"]:
        save_now(progress)
      raise
    if result.progress.epochs_done != saved["epoch"]:
      save_now(result.progress)  # the end: done, stopped early or diverged
  params = result.params
  test_accuracy = float(
    epoch_lib.accuracy(
      params, sparse.device_rows(dataset.x_test), jnp.asarray(dataset.y_test)
    )
  )
  history = result.progress.history
  summary = {
    "test_accuracy": test_accuracy,
    "val_accuracy": history[-1]["val_accuracy"] if history else None,
    "train_accuracy": history[-1]["train_accuracy"] if history else None,
    "best_val_accuracy": max(
      (h["val_accuracy"] for h in history), default=None
    ),
    "train_seconds": result.train_seconds,
    "compile_seconds": result.compile_seconds,
    "load_seconds": load_seconds,
    "epochs_run": len(history),
    "diverged_epoch": result.diverged_epoch,
    "stopped_early": result.stopped_early,
    "num_train": int(len(dataset.y_train)),
    "num_val": int(len(dataset.y_val)),
    "num_test": int(len(dataset.y_test)),
    "num_features": int(dataset.num_features),
    "num_classes": int(dataset.num_classes),
    "class_names": model["class_names"],
    "config": config_dict,
    "device": device_description(),
    "precision": "float32 (XLA default matmul precision; TF32 on GPUs)",
  }
  empty = {
    "test_accuracy": "the test split is empty",
    "val_accuracy": "the validation split is empty",
    "best_val_accuracy": "the validation split is empty",
  }
  _finite_summary(
    summary,
    {
      k: v
      for k, v in empty.items()
      if summary["num_test" if k == "test_accuracy" else "num_val"] == 0
    },
  )
  if config.plots and history:
    summary["plots"] = _write_plots(config, workdir, dataset, params, history)
  io.write_json(os.path.join(workdir, SUMMARY_NAME), summary)
  if result.diverged_epoch is not None:
    raise epoch_lib.DivergedError(result.divergence_message)
  return summary


def _write_plots(config, workdir, dataset, params, history) -> list[str]:
  paths = [
    plots.plot_curves(
      history,
      os.path.join(workdir, "curves.png"),
      f"{config.loss} on {dataset.name}",
    )
  ]
  w = np.asarray(params["W"])
  if dataset.image_shape is not None:
    # In pixel space: s = ((x − μ)/σ)·W = x·(W/σ) + const, so show W/σ.
    scale = dataset.stats.scale
    pixel_w = (
      w if scale is None else w[: len(scale)] / np.asarray(scale)[:, None]
    )
    paths.append(
      plots.plot_templates(
        pixel_w,
        dataset.image_shape,
        dataset.class_names,
        os.path.join(workdir, "templates.png"),
        f"{config.loss}: learned weights as class templates",
      )
    )
  elif dataset.num_features == 2:
    stats = dataset.stats

    def predict_raw(points):
      return np.argmax(stats.apply(points) @ w + np.asarray(params["b"]), -1)

    raw_test = _unpreprocess(dataset.x_test, stats)
    paths.append(
      plots.plot_decision_regions(
        predict_raw,
        raw_test,
        dataset.y_test,
        os.path.join(workdir, "regions.png"),
        f"{config.loss} on {dataset.name}: decision regions",
        class_names=dataset.class_names,
      )
    )
  return paths


def _unpreprocess(x, stats):
  x = np.asarray(x)[:, :2]
  if stats.scale is not None:
    x = x * stats.scale
  if stats.mean is not None:
    x = x + stats.mean
  return x
