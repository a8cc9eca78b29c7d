"""Training many configurations at once: vmap within a group, shard over devices.

For each ``Group`` (one static ``TrainConfig``, one seed) the configurations
are cut into equal chunks (``memory.split_evenly``), each padded to a multiple
of the device count with copies of its first configuration (dropped from the
results). One chunk of K configurations is trained by

    jit(vmap(epoch_lib.train_epoch,
             in_axes=(TrainState(params=0, opt_state=0, key=None, step=None),
                      HyperParams(all 0), None)))

so params ``W [K, D, C]``, ``b [K, C]``, the optimizer state and the
``HyperParams`` carry the configuration axis while the data, the
permutation key and the step counter stay unbatched: each step draws one
permutation slice and gathers one minibatch ``x_b [B, D]`` for all K, and
the K products x_b W_k become one matmul ``[B, D] @ [D, K·C]`` (and one
``[K·C, B] @ [B, D]`` for the gradients). The program is compiled once per
(``TrainConfig``, K): every chunk and every seed of a group reuse it, and a
host loop calls it once per epoch (one dispatch, one small metrics fetch,
one log line), as ``fit.fit`` does for a single run.

Sharding: the configuration axis is split over the mesh's "config" axis, the
data replicated (``distributed``); the jitted program declares those
shardings, so each device trains its K/n configurations with no
communication until the per-epoch metrics gather.

Seeds: the configurations of one chunk share one key, so each seed is its
own group (same compiled program, the key is an argument). The cost against
a batched key: S seeds run as S calls per epoch with matmuls S× narrower
(``[B, D] @ [D, K·C]`` each, not ``[D, S·K·C]``); the gathers are the same
(S minibatches per step either way), so on accelerators the loss is only
dispatch and matmul width, and sweeps usually have few seeds.

Algorithms (``algorithm``): ``"vmap"`` steps every minibatch as above;
``"blocked"`` (``blocked.blocked_epoch``, plain SGD with l2/none only)
delays the weight updates over ``block_steps`` minibatches so that the
K configurations' weights are read and written once per block instead of
once per step: the same numbers to float rounding, k-fold fewer weight bytes,
15–30 % more FLOPs for 1,024 CIFAR-10 models (``blocked`` docstring). On a
CPU the sweep is FLOP-bound and blocking is slower; on GPUs it is bound by
weight traffic. ``"auto"`` means ``"vmap"``; ``"blocked"`` is opt-in
(BENCHMARKS.md compares the two).

Divergence: configurations never interact (no reduction over the
configuration axis; column k of x_b [W_1 … W_K] depends only on W_k), so a
NaN/Inf in one changes no other value. A configuration whose loss (data + reg) is not finite after an
epoch is marked diverged at that epoch; its reported metrics are those of
its last finite epoch (NaN if none), as ``fit.fit`` keeps the last good
state; it is never selected as best.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging

from linear_jax import checks, progress, sparse
from linear_jax.sweep import blocked, distributed, memory, resume
from linear_jax.sweep.grid import Group, Point, SweepGrid
from linear_jax.train import epoch as epoch_lib

#: vmap axes of a ``TrainState``: per configuration, except key and step.
#: (A pytree prefix of TrainState's structure: its leaves are not the field
#: types, hence the ignores here and on the state's shardings below.)
STATE_AXES = epoch_lib.TrainState(0, 0, None, None)  # type: ignore[arg-type]
METRICS = ("data_loss", "reg_loss", "train_accuracy", "val_accuracy")
ALGORITHMS = ("auto", "vmap", "blocked")


def vmapped_epoch(config: epoch_lib.TrainConfig):
  """``(state[K], hparams[K], data) -> (state[K], metrics[K])``, one epoch.

  ``linear_jax.train.train_epoch`` vmapped over the configuration axis of params,
  optimizer state and ``HyperParams``; key, step and data are shared.
  """

  def one(state, hparams, data):
    return epoch_lib.train_epoch(state, hparams, data, config=config)

  return jax.vmap(one, in_axes=(STATE_AXES, 0, None), out_axes=(STATE_AXES, 0))


def vmapped_init(
  config: epoch_lib.TrainConfig,
  num_features: int,
  num_classes: int,
  num_examples: int,
):
  """``hparams[K] -> state[K]``: zero weights and fresh optimizer state each.

  The key is that of seed 0; callers replace it with the group's seed.
  """

  def one(hparams):
    return epoch_lib.init_state(
      config, hparams, 0, num_features, num_classes, num_examples
    )

  return jax.vmap(one, out_axes=STATE_AXES)


def choose_algorithm(
  config: epoch_lib.TrainConfig, algorithm: str, sparse_rows: bool = False
) -> str:
  """``"vmap"`` or ``"blocked"`` for one group (module docstring); sparse
  rows (``sparse_rows``) train with ``"vmap"`` only.

  Raises:
    LinearJaxError: ``"blocked"`` asked for a config it cannot train.
  """
  checks.lookup(dict.fromkeys(ALGORITHMS), algorithm, "sweep algorithm")
  if algorithm == "blocked" and sparse_rows:
    raise checks.LinearJaxError(
      "the blocked sweep algorithm needs dense rows; use the vmap algorithm "
      "(--sweep_algorithm=vmap or auto) for sparse data"
    )
  if algorithm == "blocked" and not blocked.supports(config):
    raise checks.LinearJaxError(
      f"the blocked sweep algorithm needs optimizer sgd and regularizer l2 "
      f"or none, got {config.optimizer}/{config.reg}; use the vmap "
      "algorithm (--sweep_algorithm=vmap or auto)"
    )
  if algorithm == "auto":  # blocked stays opt-in until measured on a GPU
    return "vmap"
  return algorithm


def epoch_function(
  config: epoch_lib.TrainConfig,
  algorithm: str,
  block_steps: int = blocked.DEFAULT_BLOCK_STEPS,
):
  """The unjitted ``(state[K], hparams[K], data) -> (state[K], metrics[K])``
  of ``"vmap"`` or ``"blocked"``.
  """
  if algorithm == "blocked":
    return blocked.blocked_epoch(config, block_steps)
  return vmapped_epoch(config)


@dataclasses.dataclass
class Program:
  """The compiled programs of one (``TrainConfig``, K) on one mesh.

  Attributes:
    init: ``hparams[K] -> state[K]`` (zero weights, fresh optimizer state).
    epoch: ``(state[K], hparams[K], data) -> (state[K], metrics[K])``;
      donates ``state``.
    take_row: ``(params[K], i) -> params[i]``, replicated (one small gather).
    length: K, a multiple of the mesh size.
    algorithm: ``"vmap"`` or ``"blocked"``.
    state_sharding: the ``TrainState`` of shardings (to restore a state).
  """

  init: Callable
  epoch: Callable
  take_row: Callable
  length: int
  algorithm: str = "vmap"
  state_sharding: object = None


def build_program(
  config: epoch_lib.TrainConfig,
  length: int,
  mesh,
  data: epoch_lib.DeviceData,
  num_classes: int,
  *,
  algorithm: str = "vmap",
  block_steps: int = blocked.DEFAULT_BLOCK_STEPS,
) -> Program:
  """Compiles the init and epoch programs for K = ``length`` configurations.

  Args:
    config: the group's static ``TrainConfig``.
    length: K, a multiple of ``mesh.size``.
    mesh: a 1-D mesh with axis "config" (``distributed.config_mesh``).
    data: the replicated ``DeviceData`` (its shapes are compiled in).
    num_classes: C.
    algorithm: ``"vmap"`` or ``"blocked"`` (``choose_algorithm``).
    block_steps: minibatches per block of ``"blocked"``.

  Returns:
    A ``Program`` whose stacked arrays are sharded ``P("config")`` and whose
    data, key and step are replicated.
  """
  by_config = distributed.config_sharding(mesh)
  rep = distributed.replicated(mesh)
  num_train, num_features = data.x_train.shape
  hp_shapes = epoch_lib.HyperParams(
    *([jax.ShapeDtypeStruct((length,), np.float32, sharding=by_config)] * 7)
  )
  init_fn = vmapped_init(config, num_features, num_classes, num_train)
  state_shapes = jax.eval_shape(init_fn, hp_shapes)
  state_sharding = epoch_lib.TrainState(
    params=jax.tree.map(lambda _: by_config, state_shapes.params),
    opt_state=jax.tree.map(lambda _: by_config, state_shapes.opt_state),
    key=rep,  # type: ignore[arg-type]
    step=rep,  # type: ignore[arg-type]
  )
  hp_sharding = epoch_lib.HyperParams(*([by_config] * 7))
  data_sharding = jax.tree.map(lambda _: rep, data)
  metrics_sharding = {name: by_config for name in METRICS}
  init = (
    jax.jit(init_fn, in_shardings=(hp_sharding,), out_shardings=state_sharding)
    .lower(hp_shapes)
    .compile()
  )
  state_args = jax.tree.map(
    lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
    state_shapes,
    state_sharding,
  )
  epoch = (
    jax.jit(
      epoch_function(config, algorithm, block_steps),
      in_shardings=(state_sharding, hp_sharding, data_sharding),
      out_shardings=(state_sharding, metrics_sharding),
      donate_argnums=(0,),
    )
    .lower(state_args, hp_shapes, data)
    .compile()
  )
  take_row = jax.jit(
    lambda params, i: jax.tree.map(lambda a: a[i], params), out_shardings=rep
  )
  return Program(init, epoch, take_row, length, algorithm, state_sharding)


@dataclasses.dataclass
class SweepResult:
  """Per-configuration outcomes, indexed like ``points`` (grid order).

  Attributes:
    points: the ``Point``s, ``points[i].index == i``.
    val_accuracy, train_accuracy, data_loss, reg_loss: float ``[K]``, after
      the last epoch (for a diverged configuration: after its last finite
      epoch, NaN if it diverged in the first).
    diverged_epoch: int ``[K]``, the first epoch with a NaN/Inf loss, 0 if none.
    history: metric name -> float ``[K, epochs]``, every epoch as computed.
    best: loss name -> index of the best non-diverged configuration on
      validation accuracy (ties: the first in grid order); absent if all of
      that loss diverged.
    best_params: loss name -> ``{"W": [D, C], "b": [C]}`` numpy, final params
      of ``best[loss]``.
    params: with ``keep_params``: ``{"W": [K, D, C], "b": [K, C]}`` numpy.
    compile_seconds: compiling the programs.
    train_seconds: the epochs, including each epoch's metrics fetch (no
      compilation, no data transfer).
    chunk_size: the configuration limit per chunk used.
    chunks: one dict per chunk run: group, configs, padding, length,
      algorithm.
    devices: the mesh's devices (``distributed.device_descriptions``).
    memory: the estimate behind the chunk size (bytes).
  """

  points: tuple[Point, ...]
  val_accuracy: np.ndarray
  train_accuracy: np.ndarray
  data_loss: np.ndarray
  reg_loss: np.ndarray
  diverged_epoch: np.ndarray
  history: dict
  best: dict = dataclasses.field(default_factory=dict)
  best_params: dict = dataclasses.field(default_factory=dict)
  params: dict | None = None
  compile_seconds: float = 0.0
  train_seconds: float = 0.0
  chunk_size: int = 0
  chunks: list = dataclasses.field(default_factory=list)
  devices: list = dataclasses.field(default_factory=list)
  memory: dict = dataclasses.field(default_factory=dict)

  @property
  def diverged(self) -> np.ndarray:
    """Bool ``[K]``."""
    return self.diverged_epoch > 0

  def num_configs(self) -> int:
    """K, the configurations swept."""
    return len(self.points)


def _points_of(groups) -> tuple[Point, ...]:
  """The groups' points in grid order (``Point.index``), not rebuilt."""
  points: list = [None] * sum(len(g.points) for g in groups)
  for group in groups:
    for p in group.points:
      points[p.index] = p
  return tuple(points)


def _is_better(val: float, index: int, best: tuple | None) -> bool:
  """Higher validation accuracy wins; on a tie the earlier grid index."""
  return best is None or val > best[0] or (val == best[0] and index < best[1])


class _Sweep:
  """The state of one ``run_sweep`` call (programs, results so far)."""

  def __init__(
    self,
    grid,
    data,
    num_classes,
    mesh,
    keep_params,
    log,
    algorithm="vmap",
    block_steps=blocked.DEFAULT_BLOCK_STEPS,
    groups=None,
  ):
    self.grid = grid
    self.algorithm = algorithm
    self.block_steps = block_steps
    self.mesh = mesh
    self.log = log and distributed.is_writer()
    self.keep_params = keep_params
    self.num_classes = num_classes
    rep = distributed.replicated(mesh)
    self.data = epoch_lib.DeviceData(
      distributed.put_rows(data.x_train, rep),
      distributed.put_global(np.asarray(data.y_train, np.int32), rep),
      distributed.put_rows(data.x_val, rep),
      distributed.put_global(np.asarray(data.y_val, np.int32), rep),
    )
    self.points = _points_of(groups if groups is not None else grid.groups())
    k, epochs = len(self.points), grid.epochs
    nan = lambda: np.full(k, np.nan)
    self.last = {name: nan() for name in METRICS}
    self.diverged_epoch = np.zeros(k, np.int64)
    self.history = {name: np.full((k, epochs), np.nan) for name in METRICS}
    self.best: dict = {}  # loss -> (val, index)
    self.best_params: dict = {}  # loss -> params
    self.params = None
    self.programs: dict = {}
    self.compile_seconds = 0.0
    self.train_seconds = 0.0
    self.chunks: list = []
    self.done: list = []  # names of finished chunks
    self.checkpoint: resume.SweepCheckpoint | None = None
    self.unfinished: dict | None = None  # a loaded chunk to continue
    self.unsaved = False  # finished chunks not yet in the checkpoint
    self.total_units = k * epochs  # configuration-epochs of the whole sweep
    self.done_units = 0
    # The overall progress, when logging.
    self.bar: progress.Progress | None = None

  def snapshot(self) -> dict:
    """Everything a resumed sweep needs besides an unfinished chunk."""
    out: dict[str, Any] = {
      f"history_{name}": self.history[name] for name in METRICS
    }
    out.update({f"last_{name}": self.last[name] for name in METRICS})
    out["diverged_epoch"] = self.diverged_epoch
    for loss, params in self.best_params.items():
      for k, v in params.items():
        out[f"best_params_{loss}_{k}"] = np.asarray(v)
    if self.params is not None:
      for k, v in self.params.items():
        out[f"params_{k}"] = v
    out.update(
      best={loss: list(v) for loss, v in self.best.items()},
      done=self.done,
      chunks=self.chunks,
      done_units=self.done_units,
      compile_seconds=self.compile_seconds,
      train_seconds=self.train_seconds,
    )
    return out

  def restore(self, saved: dict, unfinished: dict | None) -> None:
    """The inverse of ``snapshot`` (and the chunk to continue)."""
    for name in METRICS:
      self.history[name] = saved[f"history_{name}"]
      self.last[name] = saved[f"last_{name}"]
    self.diverged_epoch = saved["diverged_epoch"]
    self.best = {
      loss: (float(v), int(i)) for loss, (v, i) in saved["best"].items()
    }
    self.best_params = {
      loss: {k: saved[f"best_params_{loss}_{k}"] for k in ("W", "b")}
      for loss in self.best
    }
    if self.keep_params and "params_W" in saved:
      self.params = {k: saved[f"params_{k}"] for k in ("W", "b")}
    self.done = list(saved["done"])
    self.chunks = list(saved["chunks"])
    self.done_units = int(saved["done_units"])
    self.compile_seconds = float(saved["compile_seconds"])
    self.train_seconds = float(saved["train_seconds"])
    self.unfinished = unfinished

  def program(self, config: epoch_lib.TrainConfig, length: int) -> Program:
    """``build_program``, once per (config, K)."""
    cache_key = (config, length)
    if cache_key not in self.programs:
      algorithm = choose_algorithm(
        config, self.algorithm, isinstance(self.data.x_train, sparse.CSRRows)
      )
      t0 = time.perf_counter()
      self.programs[cache_key] = build_program(
        config,
        length,
        self.mesh,
        self.data,
        self.num_classes,
        algorithm=algorithm,
        block_steps=self.block_steps,
      )
      seconds = time.perf_counter() - t0
      self.compile_seconds += seconds
      if self.bar is not None:
        self.bar.discount(seconds)  # the ETA is the pace of training
      if self.log:
        logging.info(
          "compiled %s/%s (%s) for %d configurations in %.2f s",
          config.loss,
          config.reg,
          algorithm,
          length,
          seconds,
        )
    return self.programs[cache_key]

  def run_group(self, group: Group, chunk_size: int) -> None:
    num_devices = self.mesh.size
    count = len(group.points)
    num_chunks, length = memory.split_evenly(count, chunk_size, num_devices)
    per_chunk = -(-count // num_chunks)
    program = None
    for c in range(num_chunks):
      label = f"{group.name} chunk {c + 1}/{num_chunks}"
      if label in self.done:  # finished before a resume
        continue
      program = program or self.program(group.config, length)
      points = group.points[c * per_chunk : (c + 1) * per_chunk]
      self.run_chunk(program, group, points, label)
      self.chunks.append(
        {
          "group": group.name,
          "chunk": c + 1,
          "configs": len(points),
          "padding": length - len(points),
          "length": length,
          "algorithm": program.algorithm,
        }
      )
      self.done.append(label)
      self.unsaved = True
      # On the time cadence, not after every chunk: each save rewrites the
      # whole checkpoint (all configurations' history), so saving per chunk
      # costs chunks × size. A kill loses at most checkpoint_seconds.
      if self.checkpoint is not None and self.checkpoint.due():
        self.save()

  def save(self, chunk: dict | None = None) -> None:
    """Writes the checkpoint: the progress, and ``chunk`` if unfinished."""
    if self.checkpoint is not None:
      self.checkpoint.save(self.snapshot(), chunk)
      self.unsaved = False

  def run_chunk(self, program: Program, group: Group, points, label) -> None:
    """Trains ``points`` (padded to ``program.length``) for all epochs."""
    mesh, n = self.mesh, len(points)
    padded = tuple(points) + (points[0],) * (program.length - n)
    hparams = jax.tree.map(
      lambda v: distributed.put_global(v, distributed.config_sharding(mesh)),
      self.grid.stack_hparams(padded),
    )
    key = np.asarray(jax.random.key_data(jax.random.key(group.seed)))
    state = program.init(hparams)._replace(
      key=distributed.put_global(key, distributed.replicated(mesh))
    )
    first = 1
    if self.unfinished is not None and self.unfinished["name"] == label:
      # Continue from the saved state, bit for bit (``resume``).
      leaves = jax.tree.leaves(program.state_sharding)
      restored = [
        distributed.put_global(a, sh)
        for a, sh in zip(self.unfinished["leaves"], leaves, strict=True)
      ]
      state = jax.tree.unflatten(jax.tree.structure(state), restored)
      first = int(self.unfinished["epoch"]) + 1
      self.unfinished = None
    index = np.array([p.index for p in points])
    epochs = group.config.epochs
    for epoch in range(first, epochs + 1):
      t0 = time.perf_counter()
      with jax.transfer_guard("disallow"):
        state, metrics = program.epoch(state, hparams, self.data)
      metrics = {
        k: np.asarray(v[:n], np.float64)
        for k, v in distributed.to_host(metrics).items()
      }
      seconds = time.perf_counter() - t0
      self.train_seconds += seconds
      self.record(index, epoch, metrics)
      self.done_units += n
      if self.log:
        self.log_epoch(label, index, epoch, epochs, program.length, seconds)
      if (
        self.checkpoint is not None and epoch < epochs and self.checkpoint.due()
      ):
        self.save(
          {"name": label, "epoch": epoch, "state": distributed.to_host(state)}
        )
    self.collect_params(program, state, points, index)

  def record(self, index, epoch, metrics) -> None:
    for name in METRICS:
      self.history[name][index, epoch - 1] = metrics[name]
    finite = np.isfinite(metrics["data_loss"]) & np.isfinite(
      metrics["reg_loss"]
    )
    fresh = self.diverged_epoch[index] == 0
    self.diverged_epoch[index[fresh & ~finite]] = epoch
    good = index[fresh & finite]
    for name in METRICS:
      self.last[name][good] = metrics[name][fresh & finite]

  def log_epoch(self, label, index, epoch, epochs, length, seconds) -> None:
    val = self.last["val_accuracy"][index]
    ok = self.diverged_epoch[index] == 0
    if ok.any():
      i = index[ok][np.argmax(val[ok])]
      p = self.points[i]
      best = (
        f"best val acc {self.last['val_accuracy'][i]:.4f} "
        f"(λ={p.reg_strength:g}, lr={p.learning_rate:g}"
        + ("" if p.margin is None else f", Δ={p.margin:g}")
        + ")"
      )
    else:
      best = "all diverged"
    configs_done = sum(c["configs"] for c in self.chunks) + (
      len(index) if epoch == epochs else 0
    )  # this chunk's, once finished
    assert self.bar is not None, "log_epoch runs only when logging"
    self.bar.update(
      self.done_units,
      note=(
        f"{label} [{len(index)} configs + {length - len(index)} padding on "
        f"{self.mesh.size} devices] epoch {epoch}/{epochs}  {best}  diverged "
        f"{int((~ok).sum())}/{len(index)}  {seconds:.3f} s  |  configurations "
        f"done {configs_done}/{len(self.points)}"
      ),
    )

  def collect_params(self, program, state, points, index) -> None:
    """Keeps the final params of a new best (and of all, ``keep_params``)."""
    n = len(points)
    if self.keep_params:
      host = distributed.to_host(state.params)
      if self.params is None:
        self.params = {
          k: np.full((len(self.points),) + v.shape[1:], np.nan, v.dtype)
          for k, v in host.items()
        }
      for k, v in host.items():
        self.params[k][index] = v[:n]
    loss = points[0].loss
    ok = self.diverged_epoch[index] == 0
    candidates = [
      (self.last["val_accuracy"][i], int(i), row)
      for row, i in enumerate(index)
      if ok[row]
    ]
    if not candidates:
      return
    val, i, row = max(candidates, key=lambda c: (c[0], -c[1]))
    if _is_better(val, i, self.best.get(loss)):
      self.best[loss] = (val, i)
      if self.params is not None:
        self.best_params[loss] = {
          k: v[i].copy() for k, v in self.params.items()
        }
      else:
        row_index = distributed.put_global(
          np.int32(row), distributed.replicated(self.mesh)
        )
        self.best_params[loss] = distributed.replicated_to_host(
          program.take_row(state.params, row_index)
        )

  def result(self, chunk_size: int, memory_info: dict) -> SweepResult:
    return SweepResult(
      points=self.points,
      val_accuracy=self.last["val_accuracy"],
      train_accuracy=self.last["train_accuracy"],
      data_loss=self.last["data_loss"],
      reg_loss=self.last["reg_loss"],
      diverged_epoch=self.diverged_epoch,
      history=self.history,
      best={loss: i for loss, (_, i) in self.best.items()},
      best_params=self.best_params,
      params=self.params,
      compile_seconds=self.compile_seconds,
      train_seconds=self.train_seconds,
      chunk_size=chunk_size,
      chunks=self.chunks,
      devices=distributed.device_descriptions(self.mesh),
      memory=memory_info,
    )


def check_host(grid: SweepGrid, *, params_bytes: int = 0, host_budget=None):
  """``memory.check_sweep_host`` for ``grid``, decided by process 0 so that
  every process refuses together (free memory differs between hosts).

  Returns:
    The host estimate in bytes.
  """
  try:
    need, problem = (
      memory.check_sweep_host(
        grid.num_points(),
        grid.epochs,
        params_bytes=params_bytes,
        host_budget=host_budget,
      ),
      None,
    )
  except checks.LinearJaxError as e:
    need, problem = 0, str(e)
  if distributed.agree(problem is not None):
    raise checks.LinearJaxError(
      problem
      or "process 0 refused the sweep for its host memory (its "
      "error names the sizes)"
    )
  return need


def run_sweep(
  grid: SweepGrid,
  data,
  *,
  num_classes: int | None = None,
  chunk_size: int = 0,
  mesh=None,
  keep_params: bool = False,
  budget_bytes: int | None = None,
  log: bool = True,
  algorithm: str = "auto",
  block_steps: int = blocked.DEFAULT_BLOCK_STEPS,
  checkpoint_path: str | None = None,
  checkpoint_seconds: float = 300.0,
  host_budget=None,
) -> SweepResult:
  """Trains every configuration of ``grid``; see the module docstring.

  Args:
    grid: the ``SweepGrid``.
    data: host arrays ``x_train [N, D]``, ``y_train [N]``, ``x_val``,
      ``y_val`` (e.g. a ``linear_jax.data.Dataset``), already preprocessed.
      On several processes every process passes the same arrays.
    num_classes: C (default ``data.num_classes``, else max label + 1).
    chunk_size: at most this many configurations per compiled call, rounded
      up to a multiple of the device count; 0 picks the most that fit
      (``memory.auto_chunk_size``).
    mesh: a 1-D mesh with axis "config" (default: all devices, global).
    keep_params: also return every configuration's final params.
    budget_bytes: device bytes for the automatic chunk size (default
      ``memory.device_budget()``; on a CPU the host memory budget less the
      sweep's host estimate, ``memory.check_sweep_host``).
    log: one absl line per epoch per chunk (process 0 only).
    algorithm: ``"auto"``, ``"vmap"`` or ``"blocked"`` (module docstring).
    block_steps: minibatches per block of ``"blocked"`` (≥ 1).
    checkpoint_path: where to keep the sweep's progress (``resume``): saved
      at most every ``checkpoint_seconds`` (between chunks and inside them)
      and after the last chunk; if the file exists, the sweep continues
      from it (it must come from the same grid, data, algorithm and chunk
      size; an automatic chunk size is the checkpoint's). None: no
      checkpoints.
    checkpoint_seconds: the save interval (0: after every epoch).
    host_budget: the host memory budget (a size such as ``4GiB``; default
      ``linear_jax.budget``'s): a grid whose results, history and
      checkpoint would not fit is refused before it is expanded.

  Returns:
    A ``SweepResult``; identical on every process, and identical whether or
    not the sweep was interrupted and resumed.
  """
  grid.validate()
  checks.AT_LEAST_ONE.check(block_steps, "block_steps")
  if num_classes is None:
    num_classes = getattr(data, "num_classes", None)
  if num_classes is None:
    num_classes = int(max(np.max(data.y_train), np.max(data.y_val))) + 1
  mesh = mesh if mesh is not None else distributed.config_mesh()
  num_train, num_features = np.shape(data.x_train)
  host_need = check_host(
    grid,
    params_bytes=(num_features + 1) * num_classes * 4 if keep_params else 0,
    host_budget=host_budget,
  )
  groups = grid.groups()
  blocks = {}  # group name -> steps per block of its algorithm (0: vmap)
  for group in groups:
    epoch_lib.check_lbfgs_full_batch(group.config, num_train)
    chosen = choose_algorithm(
      group.config, algorithm, sparse.is_sparse(data.x_train)
    )
    blocks[group.name] = (
      blocked.steps_per_block(group.config, num_train, block_steps)
      if chosen == "blocked"
      else 0
    )
  sparse_rows = sparse.is_sparse(data.x_train)
  per_config = max(
    memory.config_bytes(
      g.config,
      num_features,
      num_classes,
      num_train,
      len(data.y_val),
      blocks[g.name],
    )
    + (
      memory.sparse_config_bytes(
        g.config, num_classes, data.x_train, data.x_val
      )
      if sparse_rows
      else 0
    )
    for g in groups
  )
  if sparse_rows:
    shared = max(
      memory.sparse_data_bytes(g.config, data.x_train, data.x_val)
      for g in groups
    )
  else:
    shared = max(
      memory.data_bytes(
        g.config, num_features, num_train, len(data.y_val), blocks[g.name]
      )
      for g in groups
    )
  device = mesh.devices.flat[0]
  budget = budget_bytes or memory.device_budget(device, host_budget=host_budget)
  if not budget_bytes and not memory.has_own_memory(device):
    budget -= host_need  # on a CPU the chunk shares the host's memory
  if chunk_size == 0 and checkpoint_path is not None:
    # Resuming: the chunking the checkpoint was made with, whatever memory
    # is available now (process 0 reads it, all use it).
    chunk_size = distributed.from_writer(
      resume.saved_chunk_size(checkpoint_path) or 0
    )
  chunk = distributed.from_writer(  # hosts with other free memory agree
    memory.resolve_chunk_size(chunk_size, mesh.size, per_config, shared, budget)
  )
  fits = memory.auto_chunk_size(per_config, shared, mesh.size, budget)
  if chunk > fits and distributed.is_writer():
    logging.warning(
      "--chunk_size %d is above the %d configurations that the memory "
      "model fits in %.2f GiB per device (%.2f MiB each + %.1f MiB data); "
      "the program may run out of memory",
      chunk,
      fits,
      budget / 2**30,
      per_config / 2**20,
      shared / 2**20,
    )
  memory_info = {
    "per_config_bytes": per_config,
    "shared_bytes": shared,
    "budget_bytes_per_device": budget,
    "host_bytes": host_need,
  }
  sweep = _Sweep(
    grid,
    data,
    num_classes,
    mesh,
    keep_params,
    log,
    algorithm,
    block_steps,
    groups=groups,
  )
  if checkpoint_path is not None:
    sweep.checkpoint = resume.SweepCheckpoint(
      checkpoint_path,
      resume.fingerprint(
        {
          "grid": dataclasses.asdict(grid),
          "algorithm": algorithm,
          "block_steps": block_steps,
          "chunk": chunk,
          "num_classes": num_classes,
          "keep_params": keep_params,
          "devices": mesh.size,
          "data": resume.data_digest(
            *sparse.host_arrays(data.x_train),
            data.y_train,
            *sparse.host_arrays(data.x_val),
            data.y_val,
          ),
        }
      ),
      every_seconds=checkpoint_seconds,
      writer=distributed.is_writer(),
      chunk_size=chunk,
    )
    # Process 0 decides, so that every process resumes or none does (the
    # checkpoint must then be on a filesystem that all of them read).
    loaded = (
      sweep.checkpoint.load()
      if distributed.agree(os.path.exists(checkpoint_path))
      else None
    )
    if loaded is not None:
      sweep.restore(*loaded)
      if sweep.log:
        logging.info(
          "resuming the sweep from %s: %d chunks done%s",
          checkpoint_path,
          len(sweep.done),
          ""
          if sweep.unfinished is None
          else f", {sweep.unfinished['name']} after epoch "
          f"{sweep.unfinished['epoch']}",
        )
  if sweep.log:
    sweep.bar = progress.Progress(
      "sweep configuration-epochs", sweep.total_units, start=sweep.done_units
    )
    logging.info(
      "sweep: %d configurations in %d groups on %d devices, at "
      "most %d per chunk (%.2f MiB each, data %.1f MiB)",
      len(sweep.points),
      len(groups),
      mesh.size,
      chunk,
      per_config / 2**20,
      shared / 2**20,
    )
  try:
    for group in groups:
      sweep.run_group(group, chunk)
    if sweep.checkpoint is not None and sweep.unsaved:
      sweep.save()  # the last chunks, finished since the last save
  finally:
    if sweep.bar is not None:
      sweep.bar.close()
  return sweep.result(chunk, memory_info)
