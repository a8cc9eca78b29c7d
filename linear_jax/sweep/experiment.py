"""One sweep end to end: data -> ``run_sweep`` -> best per loss -> test -> files.

``experiments/sweep.py`` is a thin flag layer over ``run``. Process 0 holds
``workdir``'s lock (``distributed.writer_lock``) for the whole sweep, so a
second sweep there is refused in one line. What goes in ``workdir`` (written by process 0
only):

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
import datetime
import fnmatch
import glob
import os
import shutil
import time

import jax
import jax.numpy as jnp
from absl import logging

from linear_jax import budget, checks, io, optimizers, regularizers, sparse
from linear_jax import losses as losses_lib
from linear_jax.checks import LinearJaxError, option
from linear_jax.sweep import (
  blocked,
  distributed,
  engine,
  memory,
  report,
  resume,
)
from linear_jax.sweep.grid import SweepGrid
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import run as train_run

RESULTS = "results.csv"


_RULES = epoch_lib.HPARAM_RULES
_VALUES = (
  "comma list of numbers and ranges logspace:START:STOP:NUM / "
  "linspace:START:STOP:NUM, e.g. 0,logspace:1e-4:1e-1:4"
)


@dataclasses.dataclass
class SweepRunConfig(distributed.ProcessOptions):
  """Every setting of a sweep, each with its help text and rule (the flags
  of ``experiments/sweep.py`` are generated from these fields).
  """

  dataset: str = option(
    "digits",
    "a tfds name, folder:PATH, or an embedded name (see "
    "python -m experiments.train --list_datasets)",
  )
  data_dir: str | None = option(None, "tfds data_dir / cache directory")
  losses: tuple[str, ...] = option(
    ("svm", "softmax"),
    "comma list of losses; each is its own compiled program",
    choices=sorted(losses_lib.LOSSES),
  )
  regs: tuple[str, ...] = option(
    ("l2",),
    "comma list of regularizers; each is its own compiled program",
    choices=sorted(regularizers.REGULARIZERS),
  )
  reg_strengths: tuple[float, ...] = option(
    (1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
    f"λ values: {_VALUES}",
    rule=_RULES["reg_strength"],
  )
  learning_rates: tuple[float, ...] = option(
    (1e-3, 1e-2, 1e-1), f"learning rates: {_VALUES}", rule=checks.LEARNING_RATE
  )
  margins: tuple[float, ...] = option(
    (1.0,),
    f"hinge margins Δ (svm losses only): {_VALUES}",
    rule=_RULES["margin"],
  )
  seeds: tuple[int, ...] | None = option(
    None,
    "comma list of training seeds (minibatch permutations), each a "
    "separate group; empty: --seed",
    rule=checks.SEED,
  )
  optimizer: str = option(
    "momentum",
    "optax optimizer (static: one per sweep)",
    choices=list(optimizers.OPTIMIZERS),
  )
  schedule: str = option(
    "constant", "learning-rate schedule", choices=list(optimizers.SCHEDULES)
  )
  momentum: float = option(
    0.9, "momentum (momentum, nesterov)", rule=_RULES["momentum"]
  )
  weight_decay: float = option(
    1e-4, "decoupled weight decay (adamw)", rule=_RULES["weight_decay"]
  )
  label_smoothing: float = option(
    0.0, "ε (softmax)", rule=_RULES["label_smoothing"]
  )
  batch_size: int = option(256, "minibatch size", rule=checks.AT_LEAST_ONE)
  full_batch: bool = option(False, "the whole training set per step")
  epochs: int = option(10, "epochs", rule=checks.AT_LEAST_ONE)
  seed: int = option(
    0,
    "seed of the validation split (and of the permutations unless --seeds)",
    rule=checks.SEED,
  )
  standardize: bool = option(False, "divide features by their train std")
  normalize_rows: bool = option(
    False, "scale each example to unit L2 norm (the TF-IDF habit)"
  )
  validation_size: int | None = option(
    None, "held-out examples carved from train", rule=checks.NONNEGATIVE
  )
  chunk_size: int = option(
    0,
    "at most this many configurations per compiled call, rounded up to "
    "a multiple of the device count; 0: as many as fit in device memory",
    rule=checks.NONNEGATIVE,
  )
  sweep_algorithm: str = option(
    "auto",
    "vmap: one vmapped step per minibatch; blocked: plain SGD "
    "(--optimizer=sgd, l2/none) with the weight updates delayed over "
    "--block_steps minibatches, the same numbers with k-fold less weight "
    "traffic but more FLOPs; auto: vmap",
    choices=engine.ALGORITHMS,
  )
  block_steps: int = option(
    blocked.DEFAULT_BLOCK_STEPS,
    "minibatches per block of --sweep_algorithm=blocked",
    rule=checks.AT_LEAST_ONE,
  )
  workdir: str = option("runs/sweep", "output directory")
  overwrite: bool = option(False, "replace an existing sweep in --workdir")
  resume: bool = option(
    False,
    "continue the sweep in --workdir from its "
    "sweep_checkpoint.npz (same flags); finished chunks "
    "are not recomputed",
  )
  checkpoint_seconds: float = option(
    300.0,
    "save the sweep's progress at most this often, between chunks and "
    "inside them (and always after the last chunk); 0: every epoch",
    rule=checks.NONNEGATIVE,
  )
  plots: bool = option(True, "write heatmap PNGs")
  memory_budget: str | None = option(None, budget.FLAG_HELP)
  command: str = ""  # recorded in captions and the summary

  def grid(self) -> SweepGrid:
    """The validated ``SweepGrid`` these options describe."""
    return SweepGrid(
      losses=tuple(self.losses),
      regs=tuple(self.regs),
      reg_strengths=tuple(self.reg_strengths),
      learning_rates=tuple(self.learning_rates),
      margins=tuple(self.margins),
      seeds=tuple(self.seeds) if self.seeds else (self.seed,),
      optimizer=self.optimizer,
      schedule=self.schedule,
      batch_size=None if self.full_batch else self.batch_size,
      epochs=self.epochs,
      momentum=self.momentum,
      weight_decay=self.weight_decay,
      label_smoothing=self.label_smoothing,
    ).validate()

  def validate(self) -> "SweepRunConfig":
    """Checks every field's rule, the grid, and that ``sweep_algorithm``
    can train it; one line if bad (pure Python: safe before JAX starts).
    """
    checks.check_options(self)
    if self.validation_size == 0:
      raise LinearJaxError(
        "validation_size must be ≥ 1: a sweep selects its best "
        "configuration on the validation split"
      )
    budget.memory_budget(self.memory_budget)  # a size, if given
    for config in self.grid().train_configs():  # the grid is not expanded
      engine.choose_algorithm(config, self.sweep_algorithm)
    return self


def check_workdir(config: SweepRunConfig) -> str:
  """The results path; refuses an existing one unless ``overwrite``.

  Process 0 decides, so that every process takes the same branch.
  """
  if distributed.agree(
    os.path.exists(config.workdir) and not os.path.isdir(config.workdir)
  ):
    raise LinearJaxError(
      f"--workdir {config.workdir} is a file, not a folder; choose another "
      "--workdir"
    )
  path = os.path.join(config.workdir, RESULTS)
  if config.resume and config.overwrite:
    raise LinearJaxError(
      "--resume continues a sweep and --overwrite starts "
      "it over; pass one of them"
    )
  existing = [
    p
    for p in (
      glob.glob(os.path.join(config.workdir, "*"))
      if os.path.isdir(config.workdir)
      else []
    )
    if os.path.basename(p) in OUTPUTS
    or fnmatch.fnmatch(os.path.basename(p), "heatmap_*.png")
  ]
  checkpoint = os.path.join(config.workdir, resume.CHECKPOINT_NAME)
  if (
    config.resume
    and distributed.agree(bool(existing))
    and not distributed.agree(os.path.exists(checkpoint))
  ):
    raise LinearJaxError(
      f"{config.workdir} holds {os.path.basename(existing[0])} but no "
      f"{resume.CHECKPOINT_NAME}, so no sweep can continue there; pass "
      "--overwrite to replace it or choose a new --workdir (nothing was "
      "written)"
    )
  if (
    distributed.agree(bool(existing))
    and not config.overwrite
    and not config.resume
  ):
    raise LinearJaxError(
      f"{path if path in existing else (existing or [path])[0]} exists; "
      "pass --resume to "
      "continue that sweep, --overwrite to replace it, or choose a new "
      "--workdir (nothing was written)"
    )
  return path


def check_disk(config: SweepRunConfig, grid: SweepGrid) -> None:
  """Refuses, in one line, a sweep whose checkpoint and tables would not fit
  on ``workdir``'s filesystem (before the grid is expanded).

  While the checkpoint is replaced the old and the new one both exist, so it
  counts twice; an existing checkpoint (``--resume``) counts as free space.
  """
  num, epochs = grid.num_points(), grid.epochs
  checkpoint = memory.sweep_checkpoint_bytes(num, epochs)
  tables = memory.sweep_output_bytes(num, epochs)
  where = os.path.abspath(config.workdir)
  while not os.path.isdir(where):
    where = os.path.dirname(where)
  free = shutil.disk_usage(where).free
  old = os.path.join(config.workdir, resume.CHECKPOINT_NAME)
  if os.path.isfile(old):
    free += os.path.getsize(old)
  need = 2 * checkpoint + tables
  if distributed.agree(need > free):
    raise LinearJaxError(
      f"the sweep's {num:,} configurations need ~{budget.format_size(need)} "
      f"on {where} (a {budget.format_size(checkpoint)} checkpoint, held "
      f"twice while it is replaced, and {budget.format_size(tables)} of "
      f"tables), which has {budget.format_size(free)} free; sweep fewer "
      "values or choose a --workdir on a larger filesystem"
    )


#: What a sweep writes (besides heatmaps); guarded against overwriting.
OUTPUTS = (
  RESULTS,
  "results.md",
  "sweep_summary.json",
  "history.csv",
  resume.CHECKPOINT_NAME,
)


def best_summary(rows: list[dict], best: dict) -> dict:
  """Loss -> the selected configuration and its accuracies."""
  keys = (
    "reg",
    "reg_strength",
    "learning_rate",
    "margin",
    "seed",
    "val_accuracy",
    "train_accuracy",
    "test_accuracy",
  )
  return {
    loss: {"index": i, **{k: rows[i][k] for k in keys}}
    for loss, i in best.items()
  }


def run(config: SweepRunConfig) -> dict:
  """Runs the sweep, evaluates the best per loss on test, writes ``workdir``.

  Returns:
    The summary (also ``sweep_summary.json``); every process gets the same
    results (``results_sha256``), only timings differ.

  Raises:
    LinearJaxError: bad options (one line), an existing results.csv, or a
      workdir in use by another run.
  """
  grid = config.validate().grid()
  with distributed.writer_lock(config.workdir):
    return _run(config, grid)


def _run(config: SweepRunConfig, grid: SweepGrid) -> dict:
  results_path = check_workdir(config)
  engine.check_host(grid, host_budget=config.memory_budget)  # before loading
  check_disk(config, grid)
  checkpoint_path = os.path.join(config.workdir, resume.CHECKPOINT_NAME)
  t0 = time.perf_counter()
  dataset = train_run.load_data(config)
  load_seconds = time.perf_counter() - t0
  if distributed.is_writer():  # after the data: a bad dataset writes nothing
    os.makedirs(config.workdir, exist_ok=True)
    io.remove_temporaries(config.workdir)
    if config.overwrite and os.path.exists(checkpoint_path):
      os.remove(checkpoint_path)
  distributed.agree(True)  # a barrier: nobody looks before the removal
  if config.resume and not os.path.exists(checkpoint_path):
    logging.info("--resume: no %s yet; starting the sweep", checkpoint_path)
  result = engine.run_sweep(
    grid,
    dataset,
    num_classes=dataset.num_classes,
    chunk_size=config.chunk_size,
    algorithm=config.sweep_algorithm,
    block_steps=config.block_steps,
    checkpoint_path=checkpoint_path,
    checkpoint_seconds=config.checkpoint_seconds,
    host_budget=config.memory_budget,
  )
  x_test = sparse.device_rows(dataset.x_test)
  y_test = jnp.asarray(dataset.y_test)
  test = {
    i: float(epoch_lib.accuracy(result.best_params[loss], x_test, y_test))
    for loss, i in result.best.items()
  }
  rows = report.result_rows(result, test)
  device = result.devices[0]
  date = datetime.date.today().isoformat()
  caption = (
    f"{config.command or 'linear_jax.sweep'}  ·  {date}  ·  "
    f"{len(result.devices)}× {device['platform']} "
    f"({device['kind']})"
  )
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
  summary["files"] = [
    RESULTS,
    "results.md",
    "sweep_summary.json",
    "history.csv",
  ] + (
    [name for _, _, name in report.heatmap_names(rows)] if config.plots else []
  )
  if distributed.is_writer():
    os.makedirs(config.workdir, exist_ok=True)
    report.write_csv(results_path, rows)
    io.atomic_write(
      os.path.join(config.workdir, "history.csv"),
      report.history_csv_text(result),
    )
    io.atomic_write(
      os.path.join(config.workdir, "results.md"),
      report.markdown(rows, result.best, caption),
    )
    if config.plots:
      report.plot_heatmaps(rows, result.best, config.workdir, caption)
    io.write_json(os.path.join(config.workdir, "sweep_summary.json"), summary)
  return summary
