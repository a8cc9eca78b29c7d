"""One sweep end to end: data -> ``run_sweep`` -> best per loss -> test -> files.

``experiments/sweep.py`` is a thin flag layer over ``run``. What goes in
``workdir`` (written by process 0 only):

- ``results.csv``: one row per configuration (``report.COLUMNS``);
  ``test_accuracy`` only for the best configuration of each loss;
- ``results.md``: the same as markdown tables, best first;
- ``sweep_summary.json``: ``train_seconds`` (epochs only: after
  compilation, data loading excluded), ``compile_seconds``,
  ``load_seconds``, ``num_configs``, ``num_diverged``, ``devices``, ``best``
  (per loss: the configuration, val/train/test accuracy), chunking, the
  memory estimate, ``results_sha256`` (``report.digest``) and the config;
- ``history.csv``: every configuration's metrics after every epoch;
- ``heatmap_<loss>.png`` (``report`` module docstring);
- ``sweep_checkpoint.npz`` while it runs and after (``resume``): a killed
  sweep continues with ``resume=True`` (``--resume``) without recomputing
  finished chunks, and gives the same results as one never interrupted.

Selection: per loss, the non-diverged configuration with the highest final
validation accuracy (ties: the first in grid order), over every regularizer,
λ, learning rate, Δ and seed; only it is evaluated on test. Each
configuration's numbers equal ``experiments/train.py`` run alone with the
same flags and ``--seed`` (the data split uses ``seed``; ``seeds``, when
given, only reseeds the minibatch permutations).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import datetime
import os
import time

import jax
import jax.numpy as jnp
from absl import logging

from linear_jax import io
from linear_jax import training
from linear_jax.sweep import blocked
from linear_jax.sweep import distributed
from linear_jax.sweep import engine
from linear_jax.sweep import report
from linear_jax.sweep import resume
from linear_jax.sweep.grid import SweepGrid
from linear_jax.checks import LinearJaxError

RESULTS = "results.csv"


@dataclasses.dataclass
class SweepRunConfig:
  """Every option of a sweep (the flags of ``experiments/sweep.py``)."""
  dataset: str = "digits"
  data_dir: str | None = None
  losses: tuple = ("svm", "softmax")
  regs: tuple = ("l2",)
  reg_strengths: tuple = (1e-4, 1e-3, 1e-2)
  learning_rates: tuple = (1e-3, 1e-2, 1e-1)
  margins: tuple = (1.0,)
  seeds: tuple | None = None  # training seeds; None: (seed,)
  optimizer: str = "momentum"
  schedule: str = "constant"
  momentum: float = 0.9
  weight_decay: float = 1e-4
  label_smoothing: float = 0.0
  batch_size: int = 256
  full_batch: bool = False
  epochs: int = 10
  seed: int = 0
  standardize: bool = False
  validation_size: int | None = None
  chunk_size: int = 0
  algorithm: str = "auto"  # engine.ALGORITHMS
  block_steps: int = blocked.DEFAULT_BLOCK_STEPS  # minibatches per block
  workdir: str = "runs/sweep"
  overwrite: bool = False
  resume: bool = False  # continue from workdir's sweep_checkpoint.npz
  checkpoint_seconds: float = 300.0  # save interval inside a chunk
  plots: bool = True
  command: str = ""  # recorded in captions and the summary

  def grid(self) -> SweepGrid:
    return SweepGrid(
        losses=tuple(self.losses), regs=tuple(self.regs),
        reg_strengths=tuple(self.reg_strengths),
        learning_rates=tuple(self.learning_rates),
        margins=tuple(self.margins),
        seeds=tuple(self.seeds) if self.seeds else (self.seed,),
        optimizer=self.optimizer, schedule=self.schedule,
        batch_size=None if self.full_batch else self.batch_size,
        epochs=self.epochs, momentum=self.momentum,
        weight_decay=self.weight_decay,
        label_smoothing=self.label_smoothing).validate()

  def check_algorithm(self) -> None:
    """Fails fast (one line) when ``algorithm`` cannot train the grid."""
    if self.block_steps < 1:
      raise LinearJaxError(f"block_steps must be ≥ 1, got {self.block_steps}")
    for group in self.grid().groups():
      engine.choose_algorithm(group.config, self.algorithm)


def load_data(config: SweepRunConfig):
  from linear_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  return data_lib.load_dataset(
      config.dataset, data_dir=config.data_dir, seed=config.seed,
      standardize=config.standardize, validation_size=config.validation_size)


def check_workdir(config: SweepRunConfig) -> str:
  """The results path; refuses an existing one unless ``overwrite``.

  Process 0 decides, so that every process takes the same branch.
  """
  if distributed.agree(os.path.exists(config.workdir) and
                      not os.path.isdir(config.workdir)):
    raise LinearJaxError(
        f"--workdir {config.workdir} is a file, not a folder; choose another "
        "--workdir")
  path = os.path.join(config.workdir, RESULTS)
  if config.resume and config.overwrite:
    raise LinearJaxError("--resume continues a sweep and --overwrite starts "
                         "it over; pass one of them")
  existing = [p for p in (glob.glob(os.path.join(config.workdir, "*"))
                          if os.path.isdir(config.workdir) else [])
              if os.path.basename(p) in OUTPUTS
              or fnmatch.fnmatch(os.path.basename(p), "heatmap_*.png")]
  if (distributed.agree(bool(existing)) and not config.overwrite and
      not config.resume):
    raise LinearJaxError(
        f"{path if path in existing else (existing or [path])[0]} exists; "
        "pass --resume to "
        "continue that sweep, --overwrite to replace it, or choose a new "
        "--workdir (nothing was written)")
  return path


#: What a sweep writes (besides heatmaps); guarded against overwriting.
OUTPUTS = (RESULTS, "results.md", "sweep_summary.json", "history.csv",
           resume.CHECKPOINT_NAME)


def best_summary(rows: list[dict], best: dict) -> dict:
  """loss -> the selected configuration and its accuracies."""
  keys = ("reg", "reg_strength", "learning_rate", "margin", "seed",
          "val_accuracy", "train_accuracy", "test_accuracy")
  return {loss: {"index": i, **{k: rows[i][k] for k in keys}}
          for loss, i in best.items()}


def run(config: SweepRunConfig) -> dict:
  """Runs the sweep, evaluates the best per loss on test, writes ``workdir``.

  Returns:
    The summary (also ``sweep_summary.json``); every process gets the same
    results (``results_sha256``), only timings differ.

  Raises:
    LinearJaxError: bad options (one line), or an existing results.csv.
  """
  grid = config.grid()
  config.check_algorithm()
  results_path = check_workdir(config)
  checkpoint_path = os.path.join(config.workdir, resume.CHECKPOINT_NAME)
  t0 = time.perf_counter()
  dataset = load_data(config)
  load_seconds = time.perf_counter() - t0
  if distributed.is_writer():  # after the data: a bad dataset writes nothing
    os.makedirs(config.workdir, exist_ok=True)
    io.remove_temporaries(config.workdir)
    if config.overwrite and os.path.exists(checkpoint_path):
      os.remove(checkpoint_path)
  if config.resume and not os.path.exists(checkpoint_path):
    logging.info("--resume: no %s yet; starting the sweep", checkpoint_path)
  result = engine.run_sweep(grid, dataset, num_classes=dataset.num_classes,
                            chunk_size=config.chunk_size,
                            algorithm=config.algorithm,
                            block_steps=config.block_steps,
                            checkpoint_path=checkpoint_path,
                            checkpoint_seconds=config.checkpoint_seconds)
  x_test, y_test = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
  test = {i: float(training.accuracy(result.best_params[loss], x_test, y_test))
          for loss, i in result.best.items()}
  rows = report.result_rows(result, test)
  device = result.devices[0]
  date = datetime.date.today().isoformat()
  caption = (f"{config.command or 'linear_jax.sweep'}  ·  {date}  ·  "
             f"{len(result.devices)}× {device['platform']} "
             f"({device['kind']})")
  missing = sorted(set(grid.losses) - set(result.best))
  summary = {
      "train_seconds": result.train_seconds,
      "compile_seconds": result.compile_seconds,
      "load_seconds": load_seconds,
      "num_configs": result.num_configs(),
      "num_diverged": int(result.diverged.sum()),
      "all_diverged": missing,
      "best": best_summary(rows, result.best),
      "devices": result.devices,
      "num_processes": jax.process_count(),
      "chunk_size": result.chunk_size,
      "algorithms": sorted({c["algorithm"] for c in result.chunks}),
      "chunks": result.chunks,
      "memory": result.memory,
      "num_train": int(len(dataset.y_train)),
      "num_val": int(len(dataset.y_val)),
      "num_features": int(dataset.num_features),
      "num_classes": int(dataset.num_classes),
      "results_sha256": report.digest(rows),
      "precision": "float32 (XLA default matmul precision; TF32 on GPUs)",
      "date": date,
      "config": dataclasses.asdict(config),
  }
  summary["files"] = [RESULTS, "results.md", "sweep_summary.json",
                      "history.csv"] + (
      [name for _, _, name in report.heatmap_names(rows)] if config.plots
      else [])
  if distributed.is_writer():
    os.makedirs(config.workdir, exist_ok=True)
    report.write_csv(results_path, rows)
    io.atomic_write(os.path.join(config.workdir, "history.csv"),
                    report.history_csv_text(result))
    report.write_text(os.path.join(config.workdir, "results.md"),
                      report.markdown(rows, result.best, caption))
    if config.plots:
      report.plot_heatmaps(rows, result.best, config.workdir, caption)
    report.write_json(os.path.join(config.workdir, "sweep_summary.json"),
                      summary)
  return summary
