"""Hyperparameter sweeps: many configurations in one compiled program.

For example::

    from linear_jax import sweep
    from linear_jax.data import load_dataset
    grid = sweep.SweepGrid(losses=("svm", "softmax"),
                           reg_strengths=(1e-4, 1e-3, 1e-2, 1e-1),
                           learning_rates=(1e-3, 1e-2), epochs=5)
    result = sweep.run_sweep(grid, load_dataset("digits"))
    result.val_accuracy[result.best["svm"]]   # 0.9408: 16 runs, 2 programs

Modules, each readable alone:

- ``grid``: the sweep as data (``SweepGrid``, ``Point``, ``Group``);
- ``engine``: ``run_sweep``: one ``jit(vmap(train_epoch))`` (or blocked
  epoch) per (loss, regularizer), called once per epoch, divergence tracked
  per configuration;
- ``blocked``: the plain-SGD epoch with delayed weight updates
  (``--sweep_algorithm=blocked``), the same numbers with k-fold less weight
  traffic;
- ``distributed``: the "config" mesh axis, shardings, multi-process
  ``initialize`` and result gathering;
- ``memory``: bytes per configuration and the automatic chunk size;
- ``report``: ``results.csv``, ``results.md``, heatmaps, digest;
- ``experiment``: one sweep end to end (``SweepRunConfig``, ``run``), what
  ``experiments/sweep.py`` calls.
"""

from linear_jax.sweep.engine import (
  Program,
  SweepResult,
  build_program,
  run_sweep,
  vmapped_epoch,
)
from linear_jax.sweep.grid import Group, Point, SweepGrid

__all__ = [
  "build_program",
  "Group",
  "Point",
  "Program",
  "run_sweep",
  "SweepGrid",
  "SweepResult",
  "vmapped_epoch",
]
