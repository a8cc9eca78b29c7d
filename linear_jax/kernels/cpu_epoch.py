"""The softmax + momentum epoch as one fused C++ XLA FFI call on the CPU.

``linear_jax.train.train_epoch`` on XLA:CPU spends an epoch of B = 256 minibatches in
~200 iterations of two skinny matmuls (``[B, D] @ [D, C]`` and ``dSᵀ x``,
C = 10) that Eigen runs far below the CPU's peak, each re-reading the gathered
minibatch. ``cpu_epoch.cc`` reads every minibatch row once and computes its
scores, softmax gradient and gradient contribution while the row is in
cache, on all cores (rows split across threads, then features for the
update); BENCHMARKS.md's epoch table times it against XLA. It is to the CPU
what ``pallas_epoch`` is to GPUs: a fast path for one recipe, checked
against the general implementation.

Supported: loss ``softmax`` (no label smoothing), reg ``l2`` or ``none``,
optimizer ``momentum``, any schedule, float32 preprocessed rows
(``DeviceData`` without ``shift``/``scale``). ``fused_epoch(config)`` is a
drop-in for ``jit(train_epoch)`` with the same inputs and outputs.

The kernel is compiled with the system's ``g++`` (C++20) on first use into
the linear_jax cache folder (``$LINEAR_JAX_CACHE`` or ``~/.cache/linear_jax``)
and reused; ``available()`` says why it cannot be used, if so.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from linear_jax import checks
from linear_jax.checks import LinearJaxError
from linear_jax.train import epoch as epoch_lib

SOURCE = Path(__file__).with_name("cpu_epoch.cc")
TARGET = "linear_jax_softmax_momentum_epoch"
FLAGS = (
  "-O3",
  "-march=native",
  "-std=c++20",
  "-ffp-contract=fast",
  "-fPIC",
  "-shared",
  "-pthread",
  "-w",
)


def supports(config: epoch_lib.TrainConfig) -> bool:
  """Whether ``fused_epoch`` can train ``config``."""
  return (
    config.loss == "softmax"
    and config.reg in ("l2", "none")
    and config.optimizer == "momentum"
  )


def _cpu_signature() -> str:
  """The CPU's feature flags (the library is built with -march=native)."""
  try:
    with open("/proc/cpuinfo") as f:
      return next((line for line in f if line.startswith("flags")), "")
  except OSError:
    return ""


def library_path() -> Path:
  """Where the compiled kernel is (or will be) cached."""
  from linear_jax.data import cache  # pylint: disable=g-import-not-at-top

  digest = hashlib.sha1()
  for part in (
    SOURCE.read_bytes(),
    " ".join(FLAGS).encode(),
    jax.ffi.include_dir().encode(),
    jax.__version__.encode(),
    _cpu_signature().encode(),
  ):
    digest.update(part)
  return (
    cache.cache_root() / "kernels" / f"cpu_epoch-{digest.hexdigest()[:16]}.so"
  )


def build() -> Path:
  """Compiles the kernel once (atomic rename into the cache); its path.

  Processes building at once take turns on a lock file beside the library
  (a blocking ``flock``, dropped if a holder dies): the first builds, the
  others wait for it and find the library. Where the filesystem does not
  lock, each builds its own and the rename keeps the library whole.
  """
  path = library_path()
  if path.exists():
    return path
  compiler = shutil.which(os.environ.get("CXX", "g++"))
  if compiler is None:
    raise LinearJaxError(
      "the fused CPU epoch needs a C++20 compiler (g++) to build "
      "linear_jax/kernels/cpu_epoch.cc; install g++ or use the XLA epoch"
    )
  path.parent.mkdir(parents=True, exist_ok=True)
  with contextlib.ExitStack() as stack:
    # A lock file that cannot be opened (another user's) or a filesystem
    # that does not lock: build all the same.
    with contextlib.suppress(OSError):
      lock = stack.enter_context(open(path.with_name(path.name + ".lock"), "a"))
      try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        logging.info("waiting for another process building %s", path.name)
        fcntl.flock(lock, fcntl.LOCK_EX)
    if not path.exists():  # another process built it while this one waited
      _compile(compiler, path)
  return path


def _compile(compiler: str, path: Path) -> None:
  """Runs ``compiler`` on the source; renames the library to ``path``."""
  with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
    out = Path(tmp) / path.name
    proc = subprocess.run(
      [
        compiler,
        *FLAGS,
        f"-I{jax.ffi.include_dir()}",
        str(SOURCE),
        "-o",
        str(out),
      ],
      capture_output=True,
      text=True,
      check=False,
    )
    if proc.returncode != 0:
      last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
      raise LinearJaxError(
        f"building the fused CPU epoch failed ({compiler}: {last}); use the "
        "XLA epoch"
      )
    os.replace(out, path)


@functools.cache
def register() -> None:
  """Builds (if needed), loads and registers the FFI target, once."""
  library = ctypes.cdll.LoadLibrary(str(build()))
  jax.ffi.register_ffi_target(
    TARGET,
    jax.ffi.pycapsule(library.LinearJaxSoftmaxMomentumEpoch),
    platform="cpu",
  )


def available() -> str | None:
  """None if the kernel builds and loads here, else why not (one line)."""
  if jax.default_backend() != "cpu":
    return f"the fused CPU epoch runs on the CPU backend, not {jax.default_backend()}"
  try:
    register()
  except (LinearJaxError, OSError) as e:
    return str(e)
  return None


def _kernel(
  wt, b, vt, vb, x, y, batches, learning_rates, momentum, reg, threads
):
  steps = batches.shape[0]
  f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  call = jax.ffi.ffi_call(
    TARGET,
    (
      f32(*wt.shape),
      f32(*b.shape),
      f32(*vt.shape),
      f32(*vb.shape),
      f32(steps),
      f32(steps),
      f32(steps, threads),
    ),
    vmap_method="sequential",
  )
  hparams = jnp.stack([momentum, reg]).astype(jnp.float32)
  return call(
    wt,
    b,
    vt,
    vb,
    x,
    y,
    batches,
    learning_rates,
    hparams,
    threads=np.int64(threads),
  )


def fused_epoch(config: epoch_lib.TrainConfig, threads: int | None = None):
  """``(state, hparams, data) -> (state, metrics)``: ``linear_jax.train.train_epoch``
  for a supported ``config`` (module docstring), as one FFI call, jitted.

  The same permutation, steps, optimizer state and metrics as
  ``train_epoch`` (float32 rounding aside); ``threads`` defaults to the
  machine's cores.
  """
  if not supports(config):
    raise LinearJaxError(
      f"the fused CPU epoch trains softmax with l2/none and momentum, got "
      f"{config.loss}/{config.reg}/{config.optimizer}; use the XLA epoch"
    )
  register()
  threads = threads or os.cpu_count() or 1

  def check(hparams: epoch_lib.HyperParams):
    smoothing = hparams.label_smoothing
    if checks.is_concrete(smoothing) and np.any(np.asarray(smoothing) != 0):
      raise LinearJaxError(
        "the fused CPU epoch has no label smoothing; use "
        "label_smoothing=0 or the XLA epoch"
      )

  def epoch(
    state: epoch_lib.TrainState,
    hparams: epoch_lib.HyperParams,
    data: epoch_lib.DeviceData,
  ):
    check(hparams)
    return jitted(state, hparams, data)

  def lower(state, hparams, data):  # ahead-of-time compilation, as jax.jit's
    check(hparams)
    return jitted.lower(state, hparams, data)

  @jax.jit
  def jitted(
    state: epoch_lib.TrainState,
    hparams: epoch_lib.HyperParams,
    data: epoch_lib.DeviceData,
  ):
    if data.shift is not None or data.scale is not None:
      raise LinearJaxError(
        "the fused CPU epoch needs preprocessed float32 "
        "rows (DeviceData without shift/scale)"
      )
    if not isinstance(data.x_train, jax.Array):
      raise LinearJaxError(
        "the fused CPU epoch reads dense rows; train sparse rows with the "
        "XLA epoch (the default)"
      )
    x, y = data.x_train.astype(jnp.float32), data.y_train.astype(jnp.int32)
    n = x.shape[0]
    per_epoch = epoch_lib.steps_per_epoch(config, n)
    key_data, batches = epoch_lib.epoch_batches(config, state.key, n)
    count = optax.tree_utils.tree_get(state.opt_state, "count")
    learning_rates = epoch_lib.epoch_learning_rates(
      config, hparams.learning_rate, count, n
    ).astype(jnp.float32)
    trace = optax.tree_utils.tree_get(state.opt_state, "trace")
    reg = hparams.reg_strength if config.reg == "l2" else jnp.zeros(())
    wt, b, vt, vb, losses, correct, sq_parts = _kernel(
      state.params["W"].T,
      state.params["b"],
      trace["W"].T,
      trace["b"],
      x,
      y,
      batches,
      learning_rates,
      hparams.momentum,
      reg,
      threads,
    )
    params = {"W": wt.T, "b": b}
    opt_state = optax.tree_utils.tree_set(
      state.opt_state, trace={"W": vt.T, "b": vb}, count=count + per_epoch
    )
    metrics = {
      "data_loss": jnp.mean(losses),
      "reg_loss": jnp.mean(reg * sq_parts.sum(axis=1)),
      "train_accuracy": jnp.mean(correct),
      "val_accuracy": epoch_lib.accuracy(
        params, data.prepare(data.x_val), data.y_val
      ),
    }
    return epoch_lib.TrainState(
      params, opt_state, key_data, state.step + per_epoch
    ), metrics

  # jax.jit's ahead-of-time API on a plain function (mypy types functions
  # as closed to new attributes).
  epoch.lower = lower  # type: ignore[attr-defined]
  return epoch
