"""A linear probe end to end: the λ path on a dataset, selected on validation.

For example::

    from linear_jax import probe
    summary = probe.run(probe.ProbeConfig(
        dataset="npz:feats.npz", Cs=(1e-3, 1e-2, 1e-1, 1.0),
        workdir="runs/probe"))
    summary["best_C"], summary["test_accuracy"]

``experiments/probe.py`` is a thin flag layer over ``run``, which

1. loads the dataset as ``experiments/train.py`` does (``--standardize``,
   ``--validation_size``, ``--seed``: the same preprocessing, fitted on the
   training split; the training mean is subtracted);
2. solves L(W, b) = (1/N) Σ L_i + λ ΣW² for each λ of the grid with one
   ``linear_jax.path.lambda_path`` call (largest λ first, each started at
   the previous solution on CPUs, λ chunks under ``vmap`` on accelerators),
   and saves the finished rows after each one (``probe_checkpoint.npz``);
3. selects the λ with the highest validation accuracy (ties: the larger λ,
   as ``path.select``);
4. with ``refit``, solves the selected λ again on train + validation (a
   ``--Cs`` grid keeps C, so λ = 1/(2·C·N) with the larger N; a
   ``--reg_strengths`` grid keeps λ); the preprocessing stays the one fitted
   on the training split;
5. evaluates the final model once on test and writes ``workdir``.

The C mapping (``reg_strength_from_C``): scikit-learn's
``LogisticRegression(C)`` minimizes C Σ_i L_i + ½‖W‖²; divided by C·N that
is (1/N) Σ_i L_i + λ‖W‖² with λ = 1/(2·C·N). For two classes it fits one
vector w = w₁ − w₀ instead of the softmax's two columns; at the optimum
w₀ = −w₁ = −w/2, so ‖W‖² = ‖w‖²/2 and λ = 1/(C·N).

What goes in ``workdir``:

- ``results.csv``: one row per λ in grid order (``COLUMNS``), then, with
  ``refit``, the refit model's row (``fit`` = ``train+val``; no validation
  accuracy, since validation is in its training rows). ``test_accuracy`` is
  filled only in the final model's row: test is evaluated once.
- ``results.md``: the final model, then every λ, as markdown tables.
- ``summary.json``: ``best_reg_strength``, ``best_C``, ``val_accuracy``,
  ``test_accuracy``, ``seconds`` (the solves and evaluations, data loading
  excluded), the final model's row, sizes, the config, and
  ``results_sha256`` (``results_digest``: the same on every process).
- ``accuracy.png``: train and validation accuracy against λ, the selected λ
  and the final test accuracy marked.
- ``checkpoint.npz``: the final model in the train binary's format, so
  ``linear_jax.model.load_model`` and ``experiments.predict`` read it.
- ``probe_checkpoint.npz``: the finished λ rows, the best parameters so
  far and the last solution, replaced atomically after each λ.
  ``resume=True`` keeps those rows and solves the rest, starting from the
  last solution; another grid, other data or other solver settings are
  refused.

Every file goes through ``linear_jax.io.atomic_write``. Nothing is written
before the options, the data and a resumed checkpoint have been checked.

Data parallel over processes (``num_processes`` > 1, ``jax.distributed``
started by ``ProcessOptions.initialize`` first): each process loads only its
rows of every split (``linear_jax.data.from_raw(shard=True)``: the splits
and the preprocessing are those of one process; an ``npz:`` file of
uncompressed arrays is read only at those rows, other sources are read
whole), the path adds its sums across processes
(``lambda_path(sharded=True)``), and test accuracy counts every process's
test rows, so every process computes the same results as one process would,
up to float32 rounding. Only process 0 locks and writes ``workdir``; with
``resume`` every process reads its ``probe_checkpoint.npz``, so ``workdir``
must be a folder all processes see (a shared filesystem).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io as std_io
import json
import math
import os
import textwrap
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from linear_jax import checks, io, path, plots, progress, shards
from linear_jax import losses as losses_lib
from linear_jax.checks import LinearJaxError, option
from linear_jax.path import reg_strength_from_C
from linear_jax.scores import linear_scores, top_class
from linear_jax.sweep import distributed
from linear_jax.sweep import resume as resume_lib
from linear_jax.sweep.report import csv_cell, float32_value, table_number
from linear_jax.train import checkpoint
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import run as train_run

#: Losses whose path ``lambda_path`` solves to a gradient tolerance. The
#: hinge losses (svm, crammer_singer) are not differentiable at the margin:
#: L-BFGS stops on them at the iteration cap, not at an optimum.
PATH_LOSSES = ("softmax", "squared_svm")

RESULTS = "results.csv"
RESULTS_MD = "results.md"
SUMMARY = "summary.json"
PLOT = "accuracy.png"
PROGRESS = "probe_checkpoint.npz"
#: What a probe writes; an earlier run's files are never replaced unless
#: ``overwrite`` (or continued with ``resume``). A training run's metrics
#: count too: its checkpoint.npz and summary.json share these names.
OUTPUTS = (
  RESULTS,
  RESULTS_MD,
  SUMMARY,
  PLOT,
  checkpoint.CHECKPOINT_NAME,
  PROGRESS,
  train_run.METRICS_NAME,
)
COLUMNS = (
  "fit",
  "reg_strength",
  "C",
  "iterations",
  "objective",
  "grad_norm",
  "train_accuracy",
  "val_accuracy",
  "test_accuracy",
  "seconds",
)
#: Rows per block when counting correct predictions: the scores of one block
#: ([rows, C] float32) are the only temporary.
EVAL_BLOCK_ROWS = 1 << 16

_VALUES = (
  "comma list of numbers and ranges logspace:START:STOP:NUM / "
  "linspace:START:STOP:NUM, e.g. logspace:1e-6:1e2:45"
)


def c_from_reg_strength(reg_strength, n: int, num_classes: int):
  """The inverse of ``reg_strength_from_C``: C for λ (inf for λ = 0).

  Args:
    reg_strength: λ ≥ 0 (a number or an array ``[K]``).
    n: N, the training rows of the objective.
    num_classes: the number of classes, ≥ 2.

  Returns:
    C, a float (or float64 ``[K]``).
  """
  lam = np.asarray(reg_strength, np.float64)
  checks.NONNEGATIVE.check(lam, "reg_strength (λ)")
  with np.errstate(divide="ignore"):
    c = 1.0 / ((1.0 if num_classes == 2 else 2.0) * lam * n)
  return float(c) if c.ndim == 0 else c


@dataclasses.dataclass
class ProbeConfig(distributed.ProcessOptions):
  """Every setting of a probe, each with its help text and rule (the flags
  of ``experiments/probe.py`` are generated from these fields; the process
  fields come from ``ProcessOptions``).
  """

  dataset: str = option(
    "digits",
    "npz:PATH, svmlight:TRAIN[,TEST], folder:PATH, tfds:NAME or an "
    "embedded name (see python -m experiments.train --list_datasets)",
  )
  data_dir: str | None = option(None, "tfds data_dir / cache directory")
  loss: str = option(
    "softmax",
    f"loss L_i; the λ path solves {', '.join(PATH_LOSSES)}",
    choices=sorted(losses_lib.LOSSES),
  )
  margin: float = option(
    1.0, "hinge margin Δ (squared_svm)", rule=checks.NONNEGATIVE
  )
  reg_strengths: tuple[float, ...] | None = option(
    None,
    f"the grid as λ values of (1/N)ΣL_i + λΣW²: {_VALUES}",
    rule=checks.NONNEGATIVE,
  )
  Cs: tuple[float, ...] | None = option(  # noqa: N815 (scikit-learn's name)
    None,
    "the grid as scikit-learn LogisticRegression C values (softmax; "
    f"λ = 1/(2CN), or 1/(CN) for 2 classes): {_VALUES}",
    rule=checks.POSITIVE,
  )
  max_iter: int = option(
    500, "L-BFGS iterations per λ at most", rule=checks.AT_LEAST_ONE
  )
  tol: float = option(
    1e-6,
    "stop a λ once the gradient norm (preconditioned) is below this",
    rule=checks.NONNEGATIVE,
  )
  seed: int = option(
    0,
    "seed of the validation split and of the preconditioner",
    rule=checks.SEED,
  )
  standardize: bool = option(False, "divide features by their train std")
  mirror_train: bool = option(
    False,
    "augment training images with their left-right mirror images (2N rows)",
  )
  validation_size: int | None = option(
    None,
    "held-out examples carved from train for the selection (default: the "
    "dataset's own validation split, else its default)",
    rule=checks.AT_LEAST_ONE,
  )
  refit: bool = option(
    False, "retrain the selected λ on train + validation before testing"
  )
  workdir: str = option("runs/probe", "output directory")
  overwrite: bool = option(False, "replace another run's files in --workdir")
  resume: bool = option(
    False,
    "continue the probe in --workdir from its probe_checkpoint.npz (same "
    "grid, data and solver flags); finished λ values are kept",
  )
  plots: bool = option(True, "write accuracy.png")
  command: str = ""  # recorded in captions and the summary

  def validate(self) -> "ProbeConfig":
    """Checks every field's rule, the loss and the grid; one line if bad
    (pure Python: safe before JAX starts).
    """
    checks.check_options(self)
    if self.loss not in PATH_LOSSES:
      raise LinearJaxError(
        f"--loss={self.loss} is not differentiable at the margin, so the λ "
        f"path cannot solve it to an optimum; use --loss="
        f"{' or --loss='.join(PATH_LOSSES)}, or experiments.sweep for "
        f"{self.loss}"
      )
    if self.reg_strengths and self.Cs:
      raise LinearJaxError(
        "--reg_strengths and --Cs both give the grid; pass one of them"
      )
    if not self.reg_strengths and not self.Cs:
      raise LinearJaxError(
        "the grid is empty; pass --reg_strengths (λ ≥ 0) or --Cs (C > 0), "
        "e.g. --Cs=logspace:1e-6:1e2:45"
      )
    if self.Cs and self.loss != "softmax":
      raise LinearJaxError(
        f"--Cs is scikit-learn's LogisticRegression C, which maps to λ for "
        f"--loss=softmax only; give the {self.loss} grid as --reg_strengths"
      )
    if self.resume and self.overwrite:
      raise LinearJaxError(
        "--resume continues a probe and --overwrite starts it over; pass one "
        "of them"
      )
    return self

  @property
  def grid_flag(self) -> str:
    """``"Cs"`` or ``"reg_strengths"``: how the grid was given."""
    return "Cs" if self.Cs else "reg_strengths"

  def grid(self, n: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(λ [K], C [K])`` float64, in the order given, for N = ``n`` rows
    (C is NaN for losses other than softmax: it has no meaning there).
    """
    if self.Cs:
      cs = np.asarray(self.Cs, np.float64)
      return reg_strength_from_C(cs, n, num_classes), cs
    lams = np.asarray(self.reg_strengths, np.float64)
    return lams, self.c_values(lams, n, num_classes)

  def c_values(self, lams, n: int, num_classes: int) -> np.ndarray:
    """C of each λ ``[K]`` for N = ``n`` rows (NaN unless softmax)."""
    lams = np.asarray(lams, np.float64)
    if self.loss != "softmax":
      return np.full(lams.shape, np.nan)
    return np.asarray(c_from_reg_strength(lams, n, num_classes))


# ---------------------------------------------------------------- workdir


def check_workdir(config: ProbeConfig) -> bool:
  """Refuses a workdir holding another run's files (writes nothing).

  What process 0 sees decides, so every process takes the same branch.

  Returns:
    True when ``config.resume`` and ``workdir`` has a probe checkpoint.
  """
  workdir = config.workdir
  if distributed.agree(os.path.lexists(workdir) and not os.path.isdir(workdir)):
    raise LinearJaxError(
      f"--workdir {workdir} is a file, not a folder; choose another --workdir"
    )
  present = [
    name
    for name in OUTPUTS
    if distributed.agree(os.path.lexists(os.path.join(workdir, name)))
  ]
  has_progress = PROGRESS in present
  if config.resume and present and not has_progress:
    raise LinearJaxError(
      f"{workdir} holds {present[0]} but no {PROGRESS}, so no probe can "
      "continue there; pass --overwrite to replace it or choose a new "
      "--workdir (nothing was written)"
    )
  if present and not config.overwrite and not config.resume:
    raise LinearJaxError(
      f"{os.path.join(workdir, present[0])} exists; pass --resume to "
      "continue that probe, --overwrite to replace it, or choose a new "
      "--workdir (nothing was written)"
    )
  if config.resume and not has_progress:
    logging.info("--resume: no %s in %s yet; starting fresh", PROGRESS, workdir)
  return config.resume and has_progress


def _data_digest(dataset, sharded: bool) -> str:
  """A digest of the splits (of every process's rows, in process order)."""
  digest = resume_lib.data_digest(
    dataset.x_train,
    dataset.y_train,
    dataset.x_val,
    dataset.y_val,
    dataset.x_test,
    dataset.y_test,
  )
  if not sharded:
    return digest
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  mine = np.frombuffer(bytes.fromhex(digest), np.uint8).astype(np.int32)
  every = multihost_utils.process_allgather(mine)  # [P, 16]
  return resume_lib.data_digest(np.asarray(every, np.int32))


def _fingerprint(
  config: ProbeConfig, dataset, lams: np.ndarray, *, sharded: bool = False
) -> dict:
  """What fixes every per-λ number: the grid, the data (as the processes
  hold it), the solver.
  """
  return {
    "grid": {
      "flag": config.grid_flag,
      "values": [float(v) for v in (config.Cs or config.reg_strengths or ())],
      "reg_strengths": [float(v) for v in lams],
    },
    "data": _data_digest(dataset, sharded),
    "solver": {
      "loss": config.loss,
      "margin": float(config.margin),
      "max_iter": int(config.max_iter),
      "tol": float(config.tol),
      "seed": int(config.seed),
    },
  }


_WHAT = {
  "grid": "another grid",
  "data": "other data (or another --num_processes)",
  "solver": "other solver settings (loss, margin, max_iter, tol, seed)",
}


def load_progress(
  file: str, fingerprint: dict
) -> tuple[dict, dict | None, dict | None]:
  """``(rows by grid index, best params, last solution)`` of a probe
  checkpoint (the params are None when absent).

  Raises:
    LinearJaxError: an unreadable file, or one of another grid, other data
      or other solver settings (one line naming which).
  """
  try:
    with np.load(file, allow_pickle=False) as f:
      meta = json.loads(str(f["meta_json"]))
      best, last = (
        {"W": f[f"{k}/W"], "b": f[f"{k}/b"]} if f"{k}/W" in f.files else None
        for k in ("best", "last")
      )
  except Exception as e:  # pylint: disable=broad-except  # torn or foreign
    raise LinearJaxError(
      f"cannot read the probe checkpoint {file} ({type(e).__name__}); pass "
      "--overwrite to start over, or choose a new --workdir"
    ) from None
  saved = meta.get("fingerprint", {})
  for key, what in _WHAT.items():
    if saved.get(key) != fingerprint[key]:
      raise LinearJaxError(
        f"--resume: {file} holds a probe of {what}; resume with the flags "
        "and data it was run with, or pass --overwrite to start over"
      )
  rows = {int(i): row for i, row in meta.get("rows", {}).items()}
  return rows, best, last


def save_progress(
  file: str,
  fingerprint: dict,
  rows: dict,
  best: dict | None,
  last: dict | None = None,
) -> None:
  """Atomically writes the finished rows, the best params so far and the
  last solution (where a resumed path starts).
  """
  arrays: dict[str, Any] = {
    "meta_json": np.asarray(
      io.dumps({"fingerprint": fingerprint, "rows": rows})
    )
  }
  for key, params in (("best", best), ("last", last)):
    if params is not None:
      arrays[f"{key}/W"] = np.asarray(params["W"])
      arrays[f"{key}/b"] = np.asarray(params["b"])
  io.atomic_write(file, lambda f: np.savez(f, **arrays))


def _prepare_workdir(config: ProbeConfig) -> None:
  """Creates ``workdir``; clears killed writes' temporaries, and with
  ``overwrite`` the files of the run it replaces.
  """
  os.makedirs(config.workdir, exist_ok=True)
  for name in io.remove_temporaries(config.workdir):
    logging.info("removed %s, left by an interrupted write", name)
  if config.overwrite:
    for name in OUTPUTS:
      file = os.path.join(config.workdir, name)
      if os.path.lexists(file):
        os.remove(file)


# ---------------------------------------------------------------- solving


@jax.jit
def _count_correct(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.sum(top_class(linear_scores(params, x)) == y)


def accuracy(
  params: dict,
  x,
  y,
  *,
  block_rows: int = EVAL_BLOCK_ROWS,
  sharded: bool = False,
) -> float:
  """Fraction of argmax_j s_j == y, over row blocks (no ``[N, C]`` array).

  Args:
    params: ``{"W": [D, C], "b": [C]}``.
    x: ``[N, D]`` preprocessed rows.
    y: ``[N]`` int labels.
    block_rows: rows per block.
    sharded: ``x``, ``y`` are this process's rows; the accuracy is over
      every process's rows (counts added by ``shards.total``).

  Returns:
    The accuracy, NaN when N = 0.
  """
  n = len(y)
  correct = 0
  for start in range(0, n, block_rows):
    stop = start + block_rows
    correct += int(_count_correct(params, x[start:stop], y[start:stop]))
  if sharded:
    correct, n = (int(v) for v in shards.total([correct, n]))
  return correct / n if n else math.nan


def _solve_path(
  config: ProbeConfig,
  x,
  y,
  x_val,
  y_val,
  lams: np.ndarray,
  num_classes: int,
  *,
  init_params: dict | None,
  callback,
  sharded: bool = False,
) -> None:
  """``lams`` by one ``lambda_path`` call; ``callback(k, params, row)``
  after each λ_k, ``params`` float32 (the checkpoint's dtype), ``row`` the
  solve's fields of a results row. A row's ``seconds`` is the wall time
  since the previous row (the first one's includes the path's setup and
  compilation; under ``vmap`` a chunk's time falls on its first λ), so the
  rows add up to the whole call.
  """
  clock = [time.perf_counter()]

  def report(k, solved):
    now = time.perf_counter()
    seconds, clock[0] = now - clock[0], now
    callback(
      k,
      {key: np.asarray(v, np.float32) for key, v in solved["params"].items()},
      {
        "iterations": int(solved["iterations"]),
        "objective": float32_value(solved["objective"]),
        "grad_norm": float32_value(solved["grad_norm"]),
        "seconds": seconds,
        "train_accuracy": float(solved["train_accuracy"]),
        "val_accuracy": float(solved["val_accuracy"]),
      },
    )

  path.lambda_path(
    x,
    y,
    x_val,
    y_val,
    reg_strengths=lams,
    loss=config.loss,
    margin=config.margin,
    num_classes=num_classes,
    max_iter=config.max_iter,
    tol=config.tol,
    seed=config.seed,
    init_params=init_params,
    callback=report,
    sharded=sharded,
  )


def results_digest(table: list[dict], params: dict) -> str:
  """sha256 of every number a probe computes: its rows without their
  ``seconds``, and the final params; processes that agree exactly give the
  same digest.
  """
  rows = [{**row, "seconds": None} for row in table]
  text = csv_text(rows) + resume_lib.data_digest(params["W"], params["b"])
  return hashlib.sha256(text.encode()).hexdigest()


def _finite(value: float) -> float | None:
  """``value``, or None where it is not finite (C of λ = 0; strict JSON)."""
  return float(value) if math.isfinite(value) else None


def _best(rows: dict, lams: np.ndarray) -> int | None:
  """Grid index of the selected row among ``rows`` (``path.select``)."""
  if not rows:
    return None
  done = sorted(rows)
  val = np.asarray([rows[i]["val_accuracy"] for i in done])
  return done[path.select(lams[done], val)]


def _note(row: dict) -> str:
  c = "" if row["C"] is None else f" C={row['C']:.3g}"
  return (
    f"λ={row['reg_strength']:.3g}{c}  it {row['iterations']}  train acc "
    f"{row['train_accuracy']:.4f}  val acc {row['val_accuracy']:.4f}"
  )


def run(config: ProbeConfig) -> dict:
  """Solves the grid, selects on validation, tests once, writes ``workdir``.

  Args:
    config: the probe's settings (validated here).

  Returns:
    The summary that ``summary.json`` holds.

  Raises:
    LinearJaxError: one line, on bad settings or data, a workdir holding
      another run's files, or a resume of another run; nothing is written
      then.
  """
  config.validate()
  config.check_started()
  # One writer from the first look at the workdir to the last write.
  with distributed.writer_lock(config.workdir):
    return _run_in_workdir(config)


def _read_progress(file: str, fingerprint: dict):
  """``load_progress`` on every process; all fail together if one cannot
  read the file (a ``workdir`` that is not shared).
  """
  failure = None
  try:
    loaded = load_progress(file, fingerprint)
  except LinearJaxError as e:
    failure = e
  shards.raise_together(
    failure,
    f"--resume: another process cannot use {file} (it says why); "
    "--workdir must be a folder that every process sees",
  )
  return loaded


def _run_in_workdir(config: ProbeConfig) -> dict:
  resuming = check_workdir(config)
  sharded = config.num_processes > 1
  writer = distributed.is_writer()
  t0 = time.perf_counter()
  dataset = train_run.load_data(config, shard=sharded)
  load_seconds = time.perf_counter() - t0
  sizes = [len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)]
  if sharded:  # every process's rows
    sizes = [int(v) for v in shards.total(sizes)]
  n, num_val, num_test = sizes
  num_classes = dataset.num_classes
  if not num_val:
    raise LinearJaxError(
      f"{dataset.name} has no validation examples to select λ on; pass "
      "--validation_size ≥ 1"
    )
  lams, cs = config.grid(n, num_classes)
  fingerprint = _fingerprint(config, dataset, lams, sharded=sharded)
  progress_file = os.path.join(config.workdir, PROGRESS)
  rows, best_params, last_params = (
    _read_progress(progress_file, fingerprint) if resuming else ({}, None, None)
  )
  # The first write: every check has passed. Process 0 replaces the
  # checkpoint only after the path's first λ, whose sums no process reaches
  # before it has read it.
  if writer:
    _prepare_workdir(config)
  if rows:
    logging.info(
      "--resume: %d of %d λ values done in %s",
      len(rows),
      len(lams),
      progress_file,
    )
  x_train = jax.device_put(dataset.x_train)
  x_val = jax.device_put(dataset.x_val)
  todo = [
    int(i) for i in np.argsort(-lams, kind="stable") if int(i) not in rows
  ]
  bar: progress.Progress | None = None

  def finished(k, params, solved):
    nonlocal bar, best_params
    i = todo[k]
    rows[i] = {
      "fit": "train",
      "reg_strength": float(lams[i]),
      "C": _finite(cs[i]),
      **solved,
      "test_accuracy": None,
    }
    if _best(rows, lams) == i:
      best_params = params
    if not writer:
      return
    save_progress(progress_file, fingerprint, rows, best_params, params)
    if bar is None:  # its seconds include compilation: not in the ETA
      logging.info(
        "λ %d/%d  %s  %s (compilation included)",
        len(rows),
        len(lams),
        _note(rows[i]),
        progress.format_seconds(rows[i]["seconds"]),
      )
      bar = progress.Progress("λ", total=len(lams), start=len(rows))
    else:
      bar.update(len(rows), note=_note(rows[i]))

  try:
    if todo:
      _solve_path(
        config,
        x_train,
        dataset.y_train,
        x_val,
        dataset.y_val,
        lams[todo],
        num_classes,
        init_params=last_params,
        callback=finished,
        sharded=sharded,
      )
  finally:
    if bar is not None:
      bar.close()
  del x_train, x_val
  chosen = _best(rows, lams)
  assert chosen is not None and best_params is not None  # the grid is not empty
  table = [dict(rows[i]) for i in range(len(lams))]
  final, params = table[chosen], best_params
  if config.refit:
    final, params = _refit(
      config, dataset, lams[chosen], cs[chosen], best_params, sharded
    )
    table.append(final)
  t_test = time.perf_counter()
  final["test_accuracy"] = accuracy(
    params, dataset.x_test, dataset.y_test, sharded=sharded
  )
  test_seconds = time.perf_counter() - t_test
  summary = {
    "best_reg_strength": float(lams[chosen]),
    "best_C": _finite(cs[chosen]),
    "val_accuracy": rows[chosen]["val_accuracy"],
    "test_accuracy": final["test_accuracy"],
    "seconds": sum(row["seconds"] for row in table) + test_seconds,
    "load_seconds": load_seconds,
    "refit": config.refit,
    "final": final,
    "grid": config.grid_flag,
    "num_reg_strengths": len(lams),
    "num_train": n,
    "num_val": num_val,
    "num_test": num_test,
    "num_processes": jax.process_count(),
    "results_sha256": results_digest(table, params),
    "num_features": int(dataset.num_features),
    "num_classes": int(num_classes),
    "class_names": [str(c) for c in dataset.class_names],
    "device": train_run.device_description(),
    "precision": "float32 (XLA default matmul precision; TF32 on GPUs)",
    "date": datetime.date.today().isoformat(),
    "config": dataclasses.asdict(config),
  }
  if writer:
    _write_outputs(config, dataset, table, chosen, final, params, summary)
  return summary


def _refit(
  config: ProbeConfig,
  dataset,
  lam: float,
  c: float,
  start: dict | None,
  sharded: bool = False,
):
  """The selected λ solved on train + validation, from ``start`` (its
  solution on train): ``(row, params)``. ``sharded``: this process's rows.

  A C grid keeps C (λ = 1/(2·C·N) with the larger N, as scikit-learn's
  ``LogisticRegression(C)`` refitted on more rows); a λ grid keeps λ.
  """
  x = np.concatenate([dataset.x_train, dataset.x_val])
  y = np.concatenate([dataset.y_train, dataset.y_val])
  n, num_classes = len(y), dataset.num_classes
  if sharded:
    n = int(shards.total([n])[0])
  if config.Cs:
    lam = float(reg_strength_from_C(c, n, num_classes))
  else:
    c = float(config.c_values(lam, n, num_classes))
  logging.info("refitting λ=%.3g on %d train + validation rows", lam, n)
  x = jax.device_put(x)
  out: dict = {}

  def keep(k, params, solved):
    del k
    out.update(params=params, solved=solved)

  # The validation rows are among its training rows: no selection split
  # (one training row stands in for the path's).
  _solve_path(
    config,
    x,
    y,
    x[:1],
    y[:1],
    np.asarray([lam]),
    num_classes,
    init_params=start,
    callback=keep,
    sharded=sharded,
  )
  row = {
    "fit": "train+val",
    "reg_strength": float(lam),
    "C": _finite(c),
    **out["solved"],
    "val_accuracy": None,
    "test_accuracy": None,
  }
  return row, out["params"]


# ---------------------------------------------------------------- outputs


def csv_text(table: list[dict]) -> str:
  """``results.csv``: ``COLUMNS``, one row per entry; empty: not applicable."""
  out = std_io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in table:
    writer.writerow([csv_cell(row[c]) for c in COLUMNS])
  return out.getvalue()


def _md_row(row: dict, bold: bool = False) -> str:
  cells = [
    row["fit"],
    table_number(row["reg_strength"], ".4g"),
    table_number(row["C"], ".4g"),
    str(row["iterations"]),
    table_number(row["objective"], ".6g"),
    table_number(row["grad_norm"], ".3g"),
    table_number(row["train_accuracy"], ".4f"),
    table_number(row["val_accuracy"], ".4f"),
    table_number(row["test_accuracy"], ".4f"),
    table_number(row["seconds"], ".2f"),
  ]
  if bold:
    cells = [f"**{c}**" for c in cells]
  return "| " + " | ".join(cells) + " |"


def markdown(table: list[dict], chosen: int, final: dict, caption: str) -> str:
  """``results.md``: the final model, then every λ (largest first), the
  selected one bold.
  """
  header = (
    "| fit | λ | C | iterations | objective | grad norm | train acc "
    "| val acc | test acc | seconds |\n|" + "---|" * len(COLUMNS)
  )
  path_rows = [r for r in table if r["fit"] == "train"]
  order = sorted(
    range(len(path_rows)), key=lambda i: (-path_rows[i]["reg_strength"], i)
  )
  lines = [
    caption,
    "",
    "## Final model (λ selected on validation, evaluated once on test)",
    "",
    header,
    _md_row(final),
    "",
    f"## All {len(path_rows)} λ values",
    "",
    header,
  ]
  lines += [_md_row(path_rows[i], bold=i == chosen) for i in order]
  return "\n".join(lines) + "\n"


def save_model(
  file: str,
  config: ProbeConfig,
  dataset,
  params: dict,
  final: dict,
  num_train: int | None = None,
) -> None:
  """The final model as a training run's ``checkpoint.npz`` (``num_train``:
  the training rows of every process; default ``dataset``'s).

  ``linear_jax.model.load_model`` and ``experiments.predict`` read it: the
  params, the preprocessing statistics, and a ``RunConfig`` with this
  probe's data settings, loss and λ (``"probe"`` in the metadata says how
  the params were fitted).
  """
  run_config = train_run.RunConfig(
    dataset=config.dataset,
    data_dir=config.data_dir,
    loss=config.loss,
    margin=config.margin,
    reg="l2",
    reg_strength=final["reg_strength"],
    optimizer="sgd",  # the smallest optimizer state; the params are solved
    full_batch=True,
    epochs=1,
    seed=config.seed,
    standardize=config.standardize,
    mirror_train=config.mirror_train,
    validation_size=config.validation_size,
    plots=False,
  )
  params = {k: np.asarray(v, np.float32) for k, v in params.items()}
  state = epoch_lib.init_state(
    run_config.train_config(),
    run_config.hparams(),
    config.seed,
    dataset.num_features,
    dataset.num_classes,
    num_train or len(dataset.y_train),
  )._replace(params=params)
  checkpoint.save(
    file,
    state=state,
    best_params=params,
    stats=dataset.stats.to_dict(),
    metadata={
      "config": dataclasses.asdict(run_config),
      "model": train_run.model_description(dataset),
      "probe": {
        "fit": final["fit"],
        "reg_strength": final["reg_strength"],
        "C": final["C"],
        "config": dataclasses.asdict(config),
      },
    },
  )


def _write_outputs(config, dataset, table, chosen, final, params, summary):
  workdir = config.workdir
  device = summary["device"]
  caption = (
    f"{config.command or 'linear_jax.probe'}  ·  {summary['date']}  ·  "
    f"{device['count']}× {device['platform']} ({device['kind']})"
  )
  files = [RESULTS, RESULTS_MD, checkpoint.CHECKPOINT_NAME, SUMMARY, PROGRESS]
  io.atomic_write(os.path.join(workdir, RESULTS), csv_text(table))
  io.atomic_write(
    os.path.join(workdir, RESULTS_MD),
    markdown(table, chosen, final, caption),
  )
  if config.plots:
    path_rows = [r for r in table if r["fit"] == "train"]
    plots.plot_accuracy_path(
      [r["reg_strength"] for r in path_rows],
      [r["train_accuracy"] for r in path_rows],
      [r["val_accuracy"] for r in path_rows],
      os.path.join(workdir, PLOT),
      selected=path_rows[chosen]["reg_strength"],
      test=(final["reg_strength"], final["test_accuracy"]),
      title=f"{config.loss} λ path on {dataset.name}\n"
      + textwrap.fill(caption, 100),
    )
    files.append(PLOT)
  save_model(
    os.path.join(workdir, checkpoint.CHECKPOINT_NAME),
    config,
    dataset,
    params,
    final,
    summary["num_train"],
  )
  summary["files"] = sorted(files)
  io.write_json(os.path.join(workdir, SUMMARY), summary)  # last: complete
