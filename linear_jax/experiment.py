"""One training run end to end: data -> fit -> workdir (metrics, summary,
checkpoint, plots). ``experiments/train.py`` is a thin flag layer over this.

What goes in ``workdir``:

- ``metrics.jsonl``: one JSON object per epoch (data_loss, reg_loss,
  train_accuracy, val_accuracy, seconds, examples_per_second);
- ``summary.json``: test/val accuracy, ``train_seconds`` (epochs only, after
  compilation, data loading excluded), ``compile_seconds``, config, device;
- ``checkpoint.npz``: state, best params, preprocessing statistics, config;
- ``curves.png``, ``templates.png`` (image data) or ``regions.png`` (2-D data).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from linear_jax import checkpoint
from linear_jax import fit as fit_lib
from linear_jax import plots
from linear_jax import training
from linear_jax import checks


@dataclasses.dataclass
class RunConfig:
  """Every option of a training run (the flags of ``experiments/train.py``)."""
  dataset: str = "digits"
  data_dir: str | None = None
  loss: str = "softmax"
  margin: float = 1.0
  label_smoothing: float = 0.0
  reg: str = "l2"
  reg_strength: float = 1e-4
  optimizer: str = "momentum"
  learning_rate: float = 1e-2
  momentum: float = 0.9
  weight_decay: float = 1e-4
  schedule: str = "constant"
  batch_size: int = 256
  full_batch: bool = False
  epochs: int = 10
  seed: int = 0
  standardize: bool = False
  mirror_train: bool = False
  validation_size: int | None = None
  early_stopping_patience: int = 0
  workdir: str = "runs/train"
  resume: bool = False
  plots: bool = True

  def train_config(self) -> training.TrainConfig:
    return training.TrainConfig(
        loss=self.loss, reg=self.reg, optimizer=self.optimizer,
        schedule=self.schedule,
        batch_size=None if self.full_batch else self.batch_size,
        epochs=self.epochs).validate()

  def hparams(self) -> training.HyperParams:
    return training.make_hparams(
        learning_rate=self.learning_rate, reg_strength=self.reg_strength,
        margin=self.margin, label_smoothing=self.label_smoothing,
        momentum=self.momentum, weight_decay=self.weight_decay)


def device_description() -> dict:
  device = jax.devices()[0]
  return {"platform": device.platform, "kind": device.device_kind,
          "count": jax.device_count()}


def load_data(config: RunConfig):
  from linear_jax import data as data_lib
  return data_lib.load_dataset(
      config.dataset, data_dir=config.data_dir, seed=config.seed,
      standardize=config.standardize, validation_size=config.validation_size,
      mirror_train=config.mirror_train)


def _write_json(path: str, obj) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=float)
  os.replace(tmp, path)


def _write_metrics(path: str, history: list[dict]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for row in history:
      f.write(json.dumps(row) + "\n")
  os.replace(tmp, path)


def _load_checkpoint(path, config, dataset):
  """``(state, best params, stats, metadata)`` shaped like ``config``'s state."""
  template = training.init_state(
      config.train_config(), config.hparams(), config.seed,
      dataset.num_features, dataset.num_classes, len(dataset.y_train))
  return checkpoint.load(path, template, template.params)


def _restore_progress(path, config, dataset):
  state, best, _, meta = _load_checkpoint(path, config, dataset)
  saved = meta.get("config", {})
  for key in ("dataset", "loss", "reg", "optimizer", "batch_size",
              "full_batch", "schedule", "standardize", "mirror_train",
              "validation_size", "seed"):
    if key in saved and saved[key] != getattr(config, key):
      raise checks.LinearJaxError(
          f"--resume: checkpoint was trained with {key}={saved[key]!r}, not "
          f"{getattr(config, key)!r}; use the same flags or a new --workdir")
  progress = fit_lib.FitProgress(
      jax.device_put(state), meta["history"], best,
      meta.get("best_val_accuracy", -1.0), meta.get("epochs_since_best", 0))
  return progress


def evaluate_checkpoint(workdir: str, data_dir: str | None = None) -> dict:
  """Reloads ``workdir``'s checkpoint and evaluates it on the test split,
  applying the saved preprocessing statistics to freshly loaded raw data."""
  path = os.path.join(workdir, checkpoint.CHECKPOINT_NAME)
  meta = checkpoint.load_metadata(path)
  config = RunConfig(**{**meta["config"], "data_dir": data_dir or
                        meta["config"].get("data_dir")})
  dataset = load_data(config)
  state, best, stats, _ = _load_checkpoint(path, config, dataset)
  params = best if best is not None else state.params
  for name, value in stats.items():
    current = getattr(dataset.stats, name, None)
    if current is not None and not np.allclose(current, value):
      raise checks.LinearJaxError(
          f"preprocessing statistic {name!r} in {path} differs from the data "
          "now loaded; the dataset changed since training")
  test = float(training.accuracy(params, jnp.asarray(dataset.x_test),
                                 jnp.asarray(dataset.y_test)))
  return {"test_accuracy": test, "epochs": len(meta["history"]),
          "checkpoint": path}


#: What a run writes; an earlier run's files are never replaced without --resume.
OUTPUTS = (checkpoint.CHECKPOINT_NAME, "metrics.jsonl", "summary.json")


def prepare_workdir(workdir: str, *, resume: bool) -> None:
  """Creates ``workdir``; refuses a file there, or earlier outputs unless resuming."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise checks.LinearJaxError(
        f"--workdir {workdir} is a file, not a folder; choose another --workdir")
  if not resume:
    for name in OUTPUTS:
      path = os.path.join(workdir, name)
      if os.path.exists(path):
        raise checks.LinearJaxError(
            f"{path} exists; pass --resume to continue that run or choose a "
            "new --workdir (nothing was overwritten)")
  os.makedirs(workdir, exist_ok=True)


def run(config: RunConfig) -> dict:
  """Trains, evaluates on test once, writes the workdir; returns the summary.

  Raises ``LinearJaxError`` (one line) on bad options or divergence.
  """
  tc = config.train_config()
  hparams = config.hparams()
  prepare_workdir(config.workdir, resume=config.resume)
  t0 = time.perf_counter()
  dataset = load_data(config)
  data = fit_lib.DeviceData.put(dataset.x_train, dataset.y_train,
                                dataset.x_val, dataset.y_val)
  load_seconds = time.perf_counter() - t0
  ckpt_path = os.path.join(config.workdir, checkpoint.CHECKPOINT_NAME)
  metrics_path = os.path.join(config.workdir, "metrics.jsonl")
  progress = None
  if config.resume:
    progress = _restore_progress(ckpt_path, config, dataset)
    logging.info("resuming from %s after epoch %d", ckpt_path,
                 progress.epochs_done)
  stats = dataset.stats.to_dict()
  config_dict = dataclasses.asdict(config)

  def save_epoch(progress: fit_lib.FitProgress):
    _write_metrics(metrics_path, progress.history)
    checkpoint.save(ckpt_path, state=progress.state,
                    best_params=progress.best_params, stats=stats,
                    metadata={"config": config_dict,
                              "history": progress.history,
                              "best_val_accuracy": progress.best_val_accuracy,
                              "epochs_since_best": progress.epochs_since_best})

  result = fit_lib.fit(tc, hparams, data, seed=config.seed,
                       num_classes=dataset.num_classes, progress=progress,
                       early_stopping_patience=config.early_stopping_patience,
                       on_epoch=save_epoch)
  params = result.params
  test_accuracy = float(training.accuracy(params, jnp.asarray(dataset.x_test),
                                          jnp.asarray(dataset.y_test)))
  history = result.progress.history
  summary = {
      "test_accuracy": test_accuracy,
      "val_accuracy": history[-1]["val_accuracy"] if history else None,
      "train_accuracy": history[-1]["train_accuracy"] if history else None,
      "best_val_accuracy": max((h["val_accuracy"] for h in history), default=None),
      "train_seconds": result.train_seconds,
      "compile_seconds": result.compile_seconds,
      "load_seconds": load_seconds,
      "epochs_run": len(history),
      "diverged_epoch": result.diverged_epoch,
      "stopped_early": result.stopped_early,
      "num_train": int(len(dataset.y_train)),
      "num_features": int(dataset.num_features),
      "num_classes": int(dataset.num_classes),
      "config": config_dict,
      "device": device_description(),
      "precision": "float32 (XLA default matmul precision; TF32 on GPUs)",
  }
  if config.plots and history:
    summary["plots"] = _write_plots(config, dataset, params, history)
  _write_json(os.path.join(config.workdir, "summary.json"), summary)
  if result.diverged_epoch is not None:
    raise training.DivergedError(result.divergence_message)
  return summary


def _write_plots(config, dataset, params, history) -> list[str]:
  paths = [plots.plot_curves(history, os.path.join(config.workdir, "curves.png"),
                             f"{config.loss} on {dataset.name}")]
  w = np.asarray(params["W"])
  if dataset.image_shape is not None:
    # In pixel space: s = ((x − μ)/σ)·W = x·(W/σ) + const, so show W/σ.
    scale = dataset.stats.scale
    pixel_w = w if scale is None else w[:len(scale)] / np.asarray(scale)[:, None]
    paths.append(plots.plot_templates(
        pixel_w, dataset.image_shape, dataset.class_names,
        os.path.join(config.workdir, "templates.png"),
        f"{config.loss}: learned weights as class templates"))
  elif dataset.num_features == 2:
    stats = dataset.stats

    def predict_raw(points):
      return np.argmax(stats.apply(points) @ w + np.asarray(params["b"]), -1)

    raw_test = _unpreprocess(dataset.x_test, stats)
    paths.append(plots.plot_decision_regions(
        predict_raw, raw_test, dataset.y_test,
        os.path.join(config.workdir, "regions.png"),
        f"{config.loss} on {dataset.name}: decision regions"))
  return paths


def _unpreprocess(x, stats):
  x = np.asarray(x)[:, :2]
  if stats.scale is not None:
    x = x * stats.scale
  if stats.mean is not None:
    x = x + stats.mean
  return x
