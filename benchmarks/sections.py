"""The benchmark sections, shared by ``benchmarks/cpu.py`` and ``gpu.py``.

    from benchmarks import sections
    result = sections.run(sections.TINY)      # {"machine", "loss", ...}

Every timing is ``timing.median_seconds``: warm-up first, compilation
excluded, ``block_until_ready``, median of repeats. Sections, in order:

- ``loss``: loss + gradient examples/s for each loss in ``linear_jax.LOSSES``,
  ``jit(value_and_grad(objective))`` and the closed-form
  ``objective_gradient`` against the course's vectorized NumPy
  (``peers.NUMPY_LOSSES``) on the same float32 arrays, after checking they
  agree;
- ``epoch``: one epoch of ``train.make_epoch_fn`` (softmax, momentum) over
  synthetic CIFAR-shaped rows, float32 and uint8 storage, batch B with unroll
  1 and ``unroll``, and the full batch, against the floor
  max(X read once / copy bandwidth, 4·N·D·C FLOPs / matmul rate); on a CPU
  also the fused C++ epoch (``kernels.cpu_epoch``); the PyTorch
  ``nn.Linear`` epoch on the same rows when torch imports;
- ``accuracy``: training seconds to a target test accuracy on a real dataset
  (standardized): for softmax and SVM the recipe runs for E = 1, 2, …
  epochs and the first E reaching the target is timed (``fit``'s
  ``train_seconds``, median of up to 3 fits), next to scikit-learn and the
  same recipe in PyTorch;
- ``sweep``: K configurations × 1 epoch with ``jit(vmap)`` against one, and
  against the K-configuration FLOP floor;
- ``blocked``: the blocked sweep (``--sweep_algorithm=blocked``, plain SGD)
  for each block size against ``vmap``, and their agreement after an epoch;
- ``pallas`` (GPU only): the one-kernel Pallas epoch
  (``kernels.pallas_epoch``) checked against ``train_epoch`` and timed beside
  it, for a few program counts P and atomic-buffer copies G.

The ceilings (copy bandwidth, matmul rate) are measured once, as section
``machine``, before the first section that needs them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import peers, timing
from benchmarks.report import Row, Section
from linear_jax import checks, shuffle, train
from linear_jax import data as data_lib
from linear_jax import losses as losses_lib
from linear_jax.checks import LinearJaxError
from linear_jax.gradients import objective_gradient
from linear_jax.objective import objective
from linear_jax.sweep import engine
from linear_jax.train import fit

SECTIONS = ("loss", "epoch", "accuracy", "sweep", "blocked", "pallas")
CPU_SECTIONS = SECTIONS[:4]

#: Storage name -> bytes per feature read per epoch.
STORAGES = {"float32": 4, "uint8": 1}
NUM_VALIDATION = 1000

#: float32 agreement required between the JAX and NumPy loss + gradient. Loose
#: on purpose: in float32 a few hinge margins within rounding of 0 land on
#: different sides of the kink in the two implementations, moving the SVM
#: gradients by ~1e-4; real mistakes (a missing 2 in 2λW, a missing 1/N) move
#: them by ≫ 1e-2. The exact check, in float64, is in tests/test_benchmark.py.
AGREEMENT = 1e-2

#: Fits of the winning E whose median is reported.
MAX_TIMING_FITS = 3

#: (programs P, atomic-buffer copies G) of the Pallas epoch timed.
PALLAS_VARIANTS = ((96, 1), (96, 4), (96, 16), (48, 4))


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """Sizes and recipes of one run.

  Attributes:
    sections: which of ``SECTIONS`` to run, in that order.
    n_loss: N of the loss + gradient throughput section.
    n_epoch: N of the epoch and sweep sections (synthetic uint8 pixels).
    num_features: D of the synthetic data (CIFAR-10: 32·32·3).
    num_classes: C of the synthetic data.
    batch_size: B of the epoch and sweep sections.
    accuracy_batch_size: B of the time-to-accuracy recipes.
    unroll: the larger ``lax.scan`` unroll measured next to unroll = 1 (the
      accuracy recipes use unroll = 1).
    repeats: timings are the median of this many runs, after a warm-up
      (time to accuracy: at most 3, the scikit-learn peers: 1 run).
    reg_strength: λ of the L2 penalty λ ΣW² (loss section and recipes).
    sweep_configs: K of the sweep and blocked sections.
    block_steps: the blocked sweep's block sizes k.
    accuracy_dataset: a ``linear_jax.data`` name, loaded standardized.
    target_accuracy: the test accuracy the recipes must reach.
    max_epochs: the longest recipe tried (E = 1, 2, ..., max_epochs).
    optimizer: optimizer of the accuracy recipes (momentum or nesterov).
    softmax_lr, svm_lr: learning rates of the softmax and SVM recipes.
    skip_slow_peers: skip scikit-learn's LogisticRegression.
    copy_bytes: array size of the copy-bandwidth ceiling.
    matmul_size: side of the square matmul of the FLOP-rate ceiling.
  """

  sections: tuple = CPU_SECTIONS
  n_loss: int = 10_000
  n_epoch: int = 50_000
  num_features: int = 3072
  num_classes: int = 10
  batch_size: int = 256
  accuracy_batch_size: int = 512
  unroll: int = 4
  repeats: int = 5
  reg_strength: float = 1e-3
  sweep_configs: int = 64
  block_steps: tuple = (2, 4)
  accuracy_dataset: str = "cifar10_jpeg"
  target_accuracy: float = 0.40
  max_epochs: int = 10
  optimizer: str = "momentum"
  softmax_lr: float = 1e-2
  svm_lr: float = 1e-3
  skip_slow_peers: bool = False
  copy_bytes: int = 1 << 28
  matmul_size: int = 1024

  def validate(self) -> "BenchConfig":
    """Returns self; raises ``LinearJaxError`` naming the first bad field."""
    if not self.sections:
      raise LinearJaxError(f"--sections is empty; valid: {','.join(SECTIONS)}")
    for name in self.sections:
      checks.lookup(dict.fromkeys(SECTIONS), name, "section")
    checks.lookup(
      dict.fromkeys(("momentum", "nesterov")), self.optimizer, "optimizer"
    )
    for name in (
      "n_loss",
      "n_epoch",
      "num_features",
      "batch_size",
      "accuracy_batch_size",
      "unroll",
      "repeats",
      "sweep_configs",
      "max_epochs",
      "matmul_size",
    ):
      if getattr(self, name) < 1:
        raise LinearJaxError(f"{name} must be ≥ 1, got {getattr(self, name)}")
    if not self.block_steps or min(self.block_steps) < 1:
      raise LinearJaxError(
        f"block_steps must be a list of integers ≥ 1, got {self.block_steps}"
      )
    if self.num_classes < 2:
      raise LinearJaxError(f"num_classes must be ≥ 2, got {self.num_classes}")
    checks.check_nonnegative(self.reg_strength, "reg_strength (λ)")
    checks.check_unit_interval(self.target_accuracy, "target_accuracy")
    for name in ("softmax_lr", "svm_lr"):
      if not getattr(self, name) > 0:
        raise LinearJaxError(f"{name} must be > 0, got {getattr(self, name)}")
    return self


#: The CPU run (``make bench``): CIFAR-10's shape, 64 configurations.
FULL = BenchConfig()

#: The GPU run: every section, 1,024 configurations, larger ceilings.
GPU = dataclasses.replace(
  FULL,
  sections=SECTIONS,
  unroll=8,
  repeats=10,
  sweep_configs=1024,
  block_steps=(4, 8, 16),
  skip_slow_peers=True,
  copy_bytes=1 << 30,
  matmul_size=8192,
)

#: Every section in seconds on the embedded ``digits`` set (the smoke tests).
TINY = BenchConfig(
  n_loss=512,
  n_epoch=512,
  num_features=48,
  batch_size=64,
  accuracy_batch_size=64,
  unroll=2,
  repeats=1,
  sweep_configs=8,
  block_steps=(2,),
  accuracy_dataset="digits",
  target_accuracy=0.85,
  softmax_lr=0.1,
  svm_lr=0.03,
  skip_slow_peers=True,
  copy_bytes=1 << 22,
  matmul_size=256,
)


def on_gpu() -> bool:
  """Whether JAX's default device is a GPU."""
  return jax.devices()[0].platform == "gpu"


# -- machine: the two ceilings -------------------------------------------------


def measure_ceilings(
  copy_bytes: int, matmul_size: int, repeats: int
) -> tuple[dict, list[Row]]:
  """``{"bandwidth": bytes/s, "flop_rate": FLOP/s}`` and their rows (on a
  GPU also the float32 rate at ``precision="highest"``, i.e. without TF32).
  """
  bandwidth = timing.copy_bandwidth(copy_bytes, repeats=repeats)
  flop_rate = timing.matmul_rate(matmul_size, repeats=repeats)
  rows = [
    Row(
      "machine",
      "copy bandwidth y = x + 1 (read + write)",
      rate=bandwidth / 1e9,
      rate_unit="GB/s",
      note=f"{copy_bytes / 2**20:.0f} MiB float32 array",
    ),
    Row(
      "machine",
      f"float32 matmul {matmul_size}×{matmul_size}",
      rate=flop_rate / 1e9,
      rate_unit="GFLOP/s",
      note="XLA default precision",
    ),
  ]
  if on_gpu():
    highest = timing.matmul_rate(
      matmul_size, precision="highest", repeats=repeats
    )
    rows.append(
      Row(
        "machine",
        f"float32 matmul {matmul_size}×{matmul_size}",
        rate=highest / 1e9,
        rate_unit="GFLOP/s",
        note='precision="highest"',
      )
    )
  return {"bandwidth": bandwidth, "flop_rate": flop_rate}, rows


# -- synthetic data of CIFAR-10's shape ---------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Pixels:
  """Uniform uint8 "pixels" ``x [N, D]``, labels ``y [N]`` in [0, C) and
  their mean image ``mean [D]``: what an epoch costs depends only on N, D, C
  and the storage type, not on the values.
  """

  x: np.ndarray
  y: np.ndarray
  mean: np.ndarray


def cifar_shaped(
  num_examples: int, num_features: int, num_classes: int, seed: int = 0
) -> Pixels:
  """Random uint8 pixels and labels, and their mean image."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(num_examples, num_features), dtype=np.uint8)
  y = rng.integers(0, num_classes, size=num_examples).astype(np.int32)
  return Pixels(x, y, x.mean(axis=0, dtype=np.float64).astype(np.float32))


def centred(pixels: Pixels) -> np.ndarray:
  """float32 ``x − mean [N, D]``."""
  xf = pixels.x.astype(np.float32)
  xf -= pixels.mean
  return xf


def device_data(pixels: Pixels, storage: str) -> train.DeviceData:
  """The pixels on the device as ``storage``: float32 with the mean image
  subtracted (4 bytes per feature to read), or raw uint8 that each minibatch
  shifts by the mean on the fly (1 byte). The validation split is the first
  ``NUM_VALIDATION`` training rows (evaluated once per epoch).
  """
  checks.lookup(STORAGES, storage, "storage")
  x, y = pixels.x, pixels.y
  val = min(NUM_VALIDATION, x.shape[0])
  if storage == "uint8":
    return train.DeviceData.put(x, y, x[:val], y[:val], shift=pixels.mean)
  xf = centred(pixels)
  return train.DeviceData.put(xf, y, xf[:val], y[:val])


# -- loss: loss + gradient throughput against NumPy ---------------------------


def problem(
  num_examples: int, num_features: int, num_classes: int, seed: int = 0
) -> dict:
  """NumPy float32 ``X [N, D]``, ``y [N]``, ``W [D, C]``, ``b [C]``."""
  rng = np.random.default_rng(seed)
  return {
    "X": rng.standard_normal((num_examples, num_features), np.float32),
    "y": rng.integers(0, num_classes, num_examples).astype(np.int32),
    # Scores of order 1, so that some hinge margins are active.
    "W": (
      rng.standard_normal((num_features, num_classes), np.float32)
      / np.sqrt(num_features, dtype=np.float32)
    ),
    "b": 0.1 * rng.standard_normal(num_classes, np.float32),
  }


def jax_loss_and_grad(loss: str):
  """``jit((params, x, y, λ) -> (L, ∇L))`` of ``linear_jax.objective``."""

  def full_loss(params, x, y, reg_strength):
    return objective(
      params, x, y, loss=loss, reg="l2", reg_strength=reg_strength
    )

  return jax.jit(jax.value_and_grad(full_loss))


def jax_closed_form_loss_and_grad(loss: str):
  """As ``jax_loss_and_grad``, with the closed-form gradient."""

  def loss_and_grad(params, x, y, reg_strength):
    kwargs = dict(loss=loss, reg="l2", reg_strength=reg_strength)
    return (
      objective(params, x, y, **kwargs),
      objective_gradient(params, x, y, **kwargs),
    )

  return jax.jit(loss_and_grad)


#: impl name -> (row label, JAX loss-and-gradient builder).
JAX_IMPLS = {
  "jax": ("JAX jit(value_and_grad(objective))", jax_loss_and_grad),
  "jax_closed_form": (
    "JAX jit(objective, objective_gradient), closed form",
    jax_closed_form_loss_and_grad,
  ),
}


def relative_difference(a, b) -> float:
  """Max |a − b| / max |b| (b the reference)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_agreement(loss: str, jax_out, numpy_out) -> float:
  """Largest relative difference of L, ∂L/∂W, ∂L/∂b.

  Raises ``LinearJaxError`` above ``AGREEMENT``.
  """
  (value, grads), (np_value, np_dw, np_db) = jax_out, numpy_out
  worst = max(
    relative_difference(np_value, value),
    relative_difference(np_dw, grads["W"]),
    relative_difference(np_db, grads["b"]),
  )
  if not worst <= AGREEMENT:
    raise LinearJaxError(
      f"NumPy reference of {loss!r} differs from linear_jax.objective by "
      f"{worst:.2e} relative (> {AGREEMENT:g}); the comparison is void"
    )
  return worst


def run_loss(config: BenchConfig, log=print) -> Section:
  """Times every loss three ways; two JAX rows and a NumPy row per loss."""
  section = Section()
  n, c = config.n_loss, config.num_classes
  p = problem(n, config.num_features, c)
  lam = np.float32(config.reg_strength)
  params = {"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])}
  x, y = jnp.asarray(p["X"]), jnp.asarray(p["y"])
  shape = f"N={n} D={config.num_features} C={c}"
  for loss in losses_lib.LOSSES:
    log(f"loss {loss}: timing JAX and NumPy loss + gradient at {shape}")
    numpy_fn = peers.NUMPY_LOSSES[loss]
    numpy_out = numpy_fn(p["W"], p["b"], p["X"], p["y"], lam)
    numpy_s = timing.median_seconds(
      numpy_fn, p["W"], p["b"], p["X"], p["y"], lam, repeats=config.repeats
    )
    section.add(
      Row(
        "loss",
        f"{loss} loss + gradient, NumPy vectorized",
        seconds=numpy_s,
        rate=n / numpy_s,
        rate_unit="examples/s",
        note=shape,
        extra={"loss": loss, "impl": "numpy", "num_examples": n},
      ),
      log,
    )
    for impl, (label, build) in JAX_IMPLS.items():
      jax_fn = build(loss)
      args = (params, x, y, jnp.float32(lam))
      worst = check_agreement(loss, jax_fn(*args), numpy_out)
      jax_s = timing.median_seconds(jax_fn, *args, repeats=config.repeats)
      section.add(
        Row(
          "loss",
          f"{loss} loss + gradient, {label}",
          seconds=jax_s,
          rate=n / jax_s,
          rate_unit="examples/s",
          ratio=numpy_s / jax_s,
          ratio_of="JAX/NumPy examples/s",
          note=f"{shape}, agrees with NumPy to {worst:.1e}",
          extra={"loss": loss, "impl": impl, "num_examples": n},
        ),
        log,
      )
  return section


# -- epoch: one epoch against its floor ---------------------------------------


def epoch_config(
  batch_size: int | None, unroll: int = 1, optimizer: str = "momentum"
) -> train.TrainConfig:
  """The timed program: softmax (``batch_size`` None: full batch)."""
  return train.TrainConfig(
    loss="softmax",
    optimizer=optimizer,
    batch_size=batch_size,
    epochs=10,
    unroll=unroll,
  )


def time_epoch(
  config: train.TrainConfig,
  data: train.DeviceData,
  num_classes: int,
  repeats: int,
  epoch_fn=None,
) -> float:
  """Median seconds of one epoch (compiled first, warmed up, blocked on) of
  ``train.make_epoch_fn(config)`` or the given ``epoch_fn``.
  """
  n, d = data.x_train.shape
  hparams = train.make_hparams(learning_rate=1e-7)
  state = train.init_state(config, hparams, 0, d, num_classes, n)
  if epoch_fn is None:
    epoch_fn = train.make_epoch_fn(config).lower(state, hparams, data).compile()
  return timing.median_seconds(epoch_fn, state, hparams, data, repeats=repeats)


def epoch_row(
  section: Section,
  what: str,
  seconds: float,
  n: int,
  floor_seconds: float,
  log,
  **extra,
) -> None:
  """Adds one timed epoch of ``n`` rows with its rate and time/floor."""
  section.add(
    Row(
      "epoch",
      what,
      seconds=seconds,
      rate=n / seconds,
      rate_unit="examples/s",
      ratio=seconds / floor_seconds,
      ratio_of="time/floor",
      extra={**extra, "floor_seconds": floor_seconds},
    ),
    log,
  )


def run_epoch(
  config: BenchConfig,
  pixels: Pixels,
  float32: train.DeviceData,
  ceilings: dict,
  log=print,
) -> Section:
  """Times every (storage, batch, unroll); a floor row per storage.
  ``float32`` is ``device_data(pixels, "float32")``, already on the device.
  """
  section = Section()
  c, b, repeats = config.num_classes, config.batch_size, config.repeats
  variants = [(b, 1)] + ([(b, config.unroll)] if config.unroll != 1 else [])
  variants.append((None, 1))
  for storage, bytes_per_feature in STORAGES.items():
    data = float32 if storage == "float32" else device_data(pixels, storage)
    n, d = data.x_train.shape
    floor = timing.epoch_floor(
      n,
      d,
      c,
      bytes_per_feature=bytes_per_feature,
      bandwidth=ceilings["bandwidth"],
      flop_rate=ceilings["flop_rate"],
    )
    floor_s = floor["floor_seconds"]
    section.add(
      Row(
        "epoch",
        f"floor: 1 epoch, {storage} X ({bytes_per_feature} B/feature)",
        seconds=floor_s,
        note=f"read {floor['read_seconds'] * 1e3:.3g} ms, compute "
        f"{floor['compute_seconds'] * 1e3:.3g} ms; N={n} D={d}",
        extra={"storage": storage, **floor},
      ),
      log,
    )
    for batch, k in variants:
      name = f"B={batch} unroll={k}" if batch else "full batch"
      log(f"epoch {storage} {name}: compiling and timing {repeats} epochs")
      seconds = time_epoch(epoch_config(batch, k), data, c, repeats)
      epoch_row(
        section,
        f"1 epoch softmax momentum, {storage} X, {name}",
        seconds,
        n,
        floor_s,
        log,
        storage=storage,
        batch_size=batch or n,
        unroll=k,
      )
    if storage == "float32":
      fused_epoch_row(section, data, floor_s, config, log)
      torch_epoch_row(section, pixels, floor_s, config, log)
  return section


def fused_epoch_row(
  section: Section, data, floor_seconds: float, config: BenchConfig, log=print
) -> None:
  """The same epoch as one fused C++ FFI call (``kernels.cpu_epoch``), on a
  CPU where it builds; otherwise a note saying why not.
  """
  from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top

  missing = "not a CPU run" if on_gpu() else cpu_epoch.available()
  if missing:
    section.notes.append(f"fused CPU epoch skipped: {missing}")
    log(f"epoch: fused CPU epoch skipped ({missing})")
    return
  b = config.batch_size
  log(f"epoch float32 B={b} fused C++ FFI: timing {config.repeats} epochs")
  train_config = epoch_config(b)
  seconds = time_epoch(
    train_config,
    data,
    config.num_classes,
    config.repeats,
    epoch_fn=cpu_epoch.fused_epoch(train_config),
  )
  epoch_row(
    section,
    f"1 epoch softmax momentum, float32 X, B={b}, fused "
    "C++ FFI call (kernels.cpu_epoch)",
    seconds,
    data.x_train.shape[0],
    floor_seconds,
    log,
    storage="float32",
    batch_size=b,
    fused=True,
  )


def torch_epoch_row(
  section: Section,
  pixels: Pixels,
  floor_seconds: float,
  config: BenchConfig,
  log=print,
) -> None:
  """The same epoch (float32, batch B, momentum) as PyTorch's eager loop."""
  missing = peers.torch_available()
  if missing:
    section.notes.append(f"PyTorch peer skipped ({missing})")
    return
  b = config.batch_size
  log(f"epoch PyTorch nn.Linear B={b}: timing {config.repeats} epochs")
  peer = peers.TorchLinear(
    centred(pixels),
    pixels.y,
    num_classes=config.num_classes,
    loss="softmax",
    learning_rate=1e-7,
    reg_strength=0.0,
    batch_size=b,
  )
  seconds = timing.median_seconds(
    peer.epoch, repeats=config.repeats, sync=peer.sync
  )
  epoch_row(
    section,
    f"1 epoch PyTorch nn.Linear + CrossEntropyLoss, float32 "
    f"X, B={b} ({peer.device})",
    seconds,
    len(pixels.y),
    floor_seconds,
    log,
    storage="float32",
    batch_size=b,
    impl="torch",
  )


# -- accuracy: seconds to a target test accuracy ------------------------------

#: (seconds, test accuracy) of training for E epochs.
Trainer = Callable[[int], tuple[float, float]]


def jax_trainer(
  ds,
  data: train.DeviceData,
  *,
  loss: str,
  learning_rate: float,
  config: BenchConfig,
  fused: bool = False,
) -> Trainer:
  """E -> (``fit``'s train seconds, test accuracy) of the JAX recipe:
  ``config.optimizer``, cosine schedule, batch B, L2 λ (``fused``: through
  the fused C++ CPU epoch, ``kernels.cpu_epoch``).
  """
  hparams = train.make_hparams(
    learning_rate=learning_rate, reg_strength=config.reg_strength
  )
  x_test, y_test = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)

  def run_epochs(epochs: int) -> tuple[float, float]:
    recipe = train.TrainConfig(
      loss=loss,
      optimizer=config.optimizer,
      schedule="cosine",
      batch_size=config.accuracy_batch_size,
      epochs=epochs,
    )
    epoch_fn = None
    if fused:
      from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top

      epoch_fn = cpu_epoch.fused_epoch(recipe)
    result = fit(
      recipe,
      hparams,
      data,
      num_classes=ds.num_classes,
      log=False,
      epoch_fn=epoch_fn,
    )
    return (
      result.train_seconds,
      float(train.accuracy(result.params, x_test, y_test)),
    )

  return run_epochs


def torch_trainer(
  ds, *, loss: str, learning_rate: float, config: BenchConfig
) -> Trainer:
  """E -> (seconds, test accuracy) of the same recipe in PyTorch."""

  def run_epochs(epochs: int) -> tuple[float, float]:
    return peers.torch_train(
      ds.x_train,
      ds.y_train,
      ds.x_test,
      ds.y_test,
      loss=loss,
      epochs=epochs,
      learning_rate=learning_rate,
      reg_strength=config.reg_strength,
      batch_size=config.accuracy_batch_size,
    )

  return run_epochs


def first_reaching(
  train: Trainer,
  *,
  target: float,
  max_epochs: int,
  repeats: int,
  name: str,
  log=print,
) -> dict:
  """Tries E = 1 … ``max_epochs``; the first E with accuracy ≥ ``target``.

  Returns:
    ``{"reached", "epochs", "accuracy", "seconds", "fits"}``: the first E
    reaching the target, its accuracy and the median seconds of ``fits``
    runs (``min(repeats, 3)``); or, if none did, the most accurate E and the
    seconds of its one run.
  """
  best = None
  for epochs in range(1, max_epochs + 1):
    seconds, acc = train(epochs)
    log(f"  {name}: E={epochs} test accuracy {acc:.4f}, {seconds:.2f} s")
    if acc >= target:
      times = [seconds] + [
        train(epochs)[0] for _ in range(min(repeats, MAX_TIMING_FITS) - 1)
      ]
      return {
        "reached": True,
        "epochs": epochs,
        "accuracy": acc,
        "seconds": float(np.median(times)),
        "fits": len(times),
      }
    if best is None or acc > best["accuracy"]:
      best = {
        "reached": False,
        "epochs": epochs,
        "accuracy": acc,
        "seconds": seconds,
        "fits": 1,
      }
  return best


def search(
  section: Section,
  impl: str,
  loss: str,
  train: Trainer,
  *,
  learning_rate: float,
  config: BenchConfig,
  log=print,
) -> None:
  """``first_reaching`` for one recipe, and its row."""
  log(
    f"accuracy: {impl} {loss}, lr {learning_rate:g}, "
    f"E = 1 … {config.max_epochs}"
  )
  result = first_reaching(
    train,
    target=config.target_accuracy,
    max_epochs=config.max_epochs,
    repeats=config.repeats,
    name=f"{impl} {loss}",
    log=log,
  )
  if result["reached"]:
    note = (
      f"reached at E={result['epochs']} epoch(s); median of "
      f"{result['fits']} fit(s)"
    )
  else:
    note = (
      f"not reached in ≤ {config.max_epochs} epochs, best "
      f"{result['accuracy']:.4f} at E={result['epochs']}"
    )
  section.add(
    Row(
      "accuracy",
      f"{impl} {loss} to {config.target_accuracy:.0%} test acc "
      f"({config.optimizer}, cosine, B={config.accuracy_batch_size}, "
      f"lr={learning_rate:g})",
      seconds=result["seconds"],
      accuracy=result["accuracy"],
      note=note,
      extra={
        "impl": impl,
        "loss": loss,
        "learning_rate": learning_rate,
        "target": config.target_accuracy,
        **result,
      },
    ),
    log,
  )


def load_accuracy_dataset(config: BenchConfig, log=print):
  """The standardized dataset, or a note (str) saying why it is absent."""
  log(f"accuracy: loading {config.accuracy_dataset} (standardized)")
  try:
    return data_lib.load_dataset(config.accuracy_dataset, standardize=True)
  except LinearJaxError as e:
    return f"section skipped, {config.accuracy_dataset} not available: {e}"


def run_accuracy(config: BenchConfig, ds, log=print) -> Section:
  """Times every recipe and peer on ``ds`` (or notes why it is absent)."""
  section = Section()
  if isinstance(ds, str):
    log(f"accuracy: {ds}")
    section.notes.append(ds)
    return section
  section.notes.append(
    f"dataset {config.accuracy_dataset}: {len(ds.y_train)} train / "
    f"{len(ds.y_val)} val / {len(ds.y_test)} test, standardized; λ = "
    f"{config.reg_strength:g}; JAX seconds are FitResult.train_seconds"
  )
  data = train.DeviceData.put(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
  recipes = (("softmax", config.softmax_lr), ("svm", config.svm_lr))
  for loss, lr in recipes:
    search(
      section,
      "JAX",
      loss,
      jax_trainer(ds, data, loss=loss, learning_rate=lr, config=config),
      learning_rate=lr,
      config=config,
      log=log,
    )
  from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top

  missing = "not a CPU run" if on_gpu() else cpu_epoch.available()
  if missing:
    section.notes.append(f"fused CPU epoch skipped: {missing}")
  else:
    lr = config.softmax_lr
    search(
      section,
      "JAX fused C++ epoch",
      "softmax",
      jax_trainer(
        ds, data, loss="softmax", learning_rate=lr, config=config, fused=True
      ),
      learning_rate=lr,
      config=config,
      log=log,
    )

  for loss in ("hinge", "log_loss"):
    log(f"accuracy: scikit-learn SGDClassifier(loss={loss!r}), 5 epochs")
    seconds, acc = peers.sgd_classifier(
      loss, ds.x_train, ds.y_train, ds.x_test, ds.y_test
    )
    section.add(
      Row(
        "accuracy",
        f"scikit-learn SGDClassifier({loss}), max_iter=5",
        seconds=seconds,
        accuracy=acc,
        note="fit seconds, 1 run, α=1e-4 OvR",
        extra={"impl": "sklearn", "loss": loss},
      ),
      log,
    )
  if config.skip_slow_peers:
    section.notes.append("LogisticRegression skipped (--skip_slow_peers)")
  else:
    log("accuracy: scikit-learn LogisticRegression(lbfgs, C=1e-3), ~40 s")
    seconds, acc = peers.logistic_regression(
      ds.x_train, ds.y_train, ds.x_test, ds.y_test
    )
    section.add(
      Row(
        "accuracy",
        "scikit-learn LogisticRegression(lbfgs, C=1e-3, max_iter=100)",
        seconds=seconds,
        accuracy=acc,
        note="fit seconds, 1 run",
        extra={"impl": "sklearn", "loss": "softmax"},
      ),
      log,
    )

  missing = peers.torch_available()
  if missing:
    section.notes.append(f"PyTorch peer skipped ({missing})")
    log(f"accuracy: PyTorch peer skipped ({missing})")
    return section
  for loss, lr in recipes:
    search(
      section,
      "PyTorch nn.Linear",
      loss,
      torch_trainer(ds, loss=loss, learning_rate=lr, config=config),
      learning_rate=lr,
      config=config,
      log=log,
    )
  return section


# -- sweep and blocked: K configurations at once ------------------------------


def stacked_hparams(
  num_configs: int,
  *,
  low: float = 1e-8,
  high: float = 1e-6,
  reg_strength: float = 0.0,
) -> train.HyperParams:
  """``HyperParams[K]``: learning rates log-spaced in [low, high], small
  enough for raw ±128 pixels to stay finite, the rest equal.
  """
  lrs = jnp.asarray(
    np.logspace(np.log10(low), np.log10(high), num_configs), jnp.float32
  )
  one = train.make_hparams(reg_strength=reg_strength)
  return jax.vmap(lambda lr: one._replace(learning_rate=lr))(lrs)


def time_sweep_epoch(
  config: train.TrainConfig,
  data: train.DeviceData,
  num_configs: int,
  num_classes: int,
  repeats: int,
  *,
  algorithm: str = "vmap",
  block_steps: int = 8,
) -> float:
  """Median seconds of one epoch of ``num_configs`` configurations through
  the sweep engine's ``algorithm`` ("vmap" or "blocked").
  """
  n, d = data.x_train.shape
  hparams = stacked_hparams(num_configs)
  state = engine.vmapped_init(config, d, num_classes, n)(hparams)
  compiled = (
    jax.jit(engine.epoch_function(config, algorithm, block_steps))
    .lower(state, hparams, data)
    .compile()
  )
  return timing.median_seconds(compiled, state, hparams, data, repeats=repeats)


def run_sweep(
  config: BenchConfig, data: train.DeviceData, ceilings: dict, log=print
) -> Section:
  """Times 1 and K configurations (softmax, momentum); rows with both ratios:
  K configurations against one (target ≤ K/4) and against their FLOP floor
  FLOPs(K)/matmul rate (target ≤ 1.5). The floor alone makes the first
  ratio at least FLOPs(K)/rate / one configuration's time
  (``ratio_lower_bound``).
  """
  section = Section()
  n, d = data.x_train.shape
  c, b, k, repeats = (
    config.num_classes,
    config.batch_size,
    config.sweep_configs,
    config.repeats,
  )
  train_config = epoch_config(b)
  log(f"sweep: 1 configuration, B={b}, timing {repeats} epochs")
  one = time_epoch(train_config, data, c, repeats)
  log(f"sweep: {k} configurations, timing {repeats} epochs")
  many = time_sweep_epoch(train_config, data, k, c, repeats)
  floor = timing.epoch_floor(
    n,
    d,
    c,
    bytes_per_feature=4,
    bandwidth=ceilings["bandwidth"],
    flop_rate=ceilings["flop_rate"],
    num_configs=k,
  )
  compute = floor["compute_seconds"]
  shape = f"N={n} D={d} C={c} B={b} float32"
  section.add(
    Row(
      "sweep",
      "1 configuration × 1 epoch (jit epoch)",
      seconds=one,
      rate=n / one,
      rate_unit="examples/s",
      note=shape,
      extra={"num_configs": 1},
    ),
    log,
  )
  section.add(
    Row(
      "sweep",
      f"{k} configurations × 1 epoch (jit(vmap) epoch)",
      seconds=many,
      rate=n * k / many,
      rate_unit="config-examples/s",
      ratio=many / one,
      ratio_of=f"{k} configs/1 config time",
      note=f"target ≤ {k / 4:g}; the FLOP floor alone implies "
      f"≥ {compute / one:.3g}",
      extra={"num_configs": k, "ratio_lower_bound": compute / one},
    ),
    log,
  )
  section.add(
    Row(
      "sweep",
      f"per configuration-epoch in the {k}-config sweep",
      seconds=many / k,
      ratio=many / compute,
      ratio_of="time/FLOP floor",
      note=f"floor FLOPs({k})/matmul rate = {compute * 1e3:.3g} ms per sweep "
      "epoch; target ≤ 1.5",
      extra={
        "num_configs": k,
        "compute_floor_seconds": compute,
        "read_floor_seconds": floor["read_seconds"],
      },
    ),
    log,
  )
  return section


def blocked_agreement(
  data: train.DeviceData,
  num_classes: int,
  *,
  num_configs: int,
  block_steps: int,
) -> float:
  """Max |W_blocked − W_vmap| / max |W_vmap| after one epoch of plain SGD,
  lr 1e-9 … 1e-6, λ 1e-3: the stable range for raw ±128 pixels (two
  blown-up float32 trajectories need not agree).
  """
  n, d = data.x_train.shape
  config = train.TrainConfig(
    loss="softmax", optimizer="sgd", batch_size=min(256, n), epochs=1
  )
  hparams = stacked_hparams(num_configs, low=1e-9, reg_strength=1e-3)
  state = engine.vmapped_init(config, d, num_classes, n)(hparams)
  w = {
    a: jax.jit(engine.epoch_function(config, a, block_steps))(
      state, hparams, data
    )[0].params["W"]
    for a in ("vmap", "blocked")
  }
  return float(
    jnp.max(jnp.abs(w["blocked"] - w["vmap"])) / jnp.max(jnp.abs(w["vmap"]))
  )


def run_blocked(
  config: BenchConfig, data: train.DeviceData, log=print
) -> Section:
  """K configurations of plain SGD, ``vmap`` against blocked for each k."""
  section = Section()
  c, b, k, repeats = (
    config.num_classes,
    config.batch_size,
    config.sweep_configs,
    config.repeats,
  )
  sgd = epoch_config(b, optimizer="sgd")
  log(f"blocked: {k} configurations, vmap, timing {repeats} epochs")
  base = time_sweep_epoch(sgd, data, k, c, repeats)
  section.add(
    Row(
      "blocked",
      f"{k} configurations × 1 epoch sgd, vmap",
      seconds=base,
      extra={"num_configs": k, "block_steps": 1},
    ),
    log,
  )
  for steps in config.block_steps:
    log(f"blocked: {k} configurations, k={steps}, timing {repeats} epochs")
    seconds = time_sweep_epoch(
      sgd, data, k, c, repeats, algorithm="blocked", block_steps=steps
    )
    section.add(
      Row(
        "blocked",
        f"{k} configurations × 1 epoch sgd, blocked k={steps}",
        seconds=seconds,
        ratio=seconds / base,
        ratio_of="time/vmap time",
        extra={"num_configs": k, "block_steps": steps},
      ),
      log,
    )
  agree_k = min(k, 64)
  steps = max(config.block_steps)
  relative = blocked_agreement(data, c, num_configs=agree_k, block_steps=steps)
  section.notes.append(
    f"blocked k={steps} vs vmap, {agree_k} configurations, 1 epoch: max "
    f"|ΔW| / max |W| = {relative:.2e}"
  )
  log(f"blocked: agreement {relative:.2e}")
  return section


# -- pallas: the one-kernel GPU epoch -----------------------------------------


def pallas_epoch_fn(
  batch_size: int, num_programs: int, *, cosine=False, groups=1
):
  """``jit((params, key_data, x, y, [lr, μ, λ]) -> params)``: one epoch of
  ``kernels.pallas_epoch`` over the keyed permutation ``train_epoch`` uses.
  """
  from linear_jax.kernels import pallas_epoch  # pylint: disable=g-import-not-at-top

  @jax.jit
  def epoch(params, key_data, x, y, kernel_hp):
    _, perm_key = jax.random.split(jax.random.wrap_key_data(key_data))
    steps = x.shape[0] // batch_size
    batches = shuffle.permutation(perm_key, x.shape[0])[: steps * batch_size]
    return pallas_epoch.softmax_momentum_epoch(
      params,
      batches.reshape(steps, batch_size).astype(jnp.int32),
      x,
      y,
      kernel_hp,
      num_programs=num_programs,
      cosine=cosine,
      groups=groups,
    )

  return epoch


def run_pallas(
  config: BenchConfig, data: train.DeviceData, ds, log=print
) -> Section:
  """The Pallas epoch per (P, G) of ``PALLAS_VARIANTS``: its update checked
  against ``train_epoch``'s, its time beside XLA's; then one cosine epoch on
  the accuracy dataset, if loaded.
  """
  section = Section()
  if not on_gpu():
    section.notes.append("section skipped: the Pallas epoch needs a GPU")
    return section
  n, d = data.x_train.shape
  c, b, repeats = config.num_classes, config.batch_size, config.repeats
  train_config = train.TrainConfig(
    loss="softmax", reg="l2", optimizer="momentum", batch_size=b, epochs=1
  )
  hparams = train.make_hparams(learning_rate=1e-7, reg_strength=1e-3)
  state = train.init_state(train_config, hparams, 0, d, c, n)
  rng = np.random.default_rng(1)
  state = state._replace(
    params={
      "W": jnp.asarray(1e-3 * rng.normal(size=(d, c)), jnp.float32),
      "b": jnp.zeros(c, jnp.float32),
    }
  )
  xla_epoch = train.make_epoch_fn(train_config)
  expected = xla_epoch(state, hparams, data)[0].params["W"]
  section.add(
    Row(
      "pallas",
      f"XLA train_epoch softmax momentum B={b}",
      seconds=timing.median_seconds(
        xla_epoch, state, hparams, data, repeats=repeats
      ),
    ),
    log,
  )
  kernel_hp = jnp.array([1e-7, 0.9, 1e-3], jnp.float32)
  args = (state.params, state.key, data.x_train, data.y_train, kernel_hp)
  for programs, groups in PALLAS_VARIANTS:
    log(f"pallas: P={programs} G={groups}")
    epoch = pallas_epoch_fn(b, programs, groups=groups)
    step = expected - state.params["W"]
    err = float(
      jnp.linalg.norm(epoch(*args)["W"] - expected) / jnp.linalg.norm(step)
    )
    section.add(
      Row(
        "pallas",
        f"Pallas one-kernel epoch P={programs} G={groups} B={b}",
        seconds=timing.median_seconds(epoch, *args, repeats=repeats),
        note=f"update rel. err vs XLA {err:.1e}",
        extra={"programs": programs, "groups": groups, "update_error": err},
      ),
      log,
    )
  if isinstance(ds, str):
    return section
  epoch = pallas_epoch_fn(b, PALLAS_VARIANTS[0][0], cosine=True, groups=4)
  zero = {
    "W": jnp.zeros((ds.x_train.shape[1], ds.num_classes), jnp.float32),
    "b": jnp.zeros(ds.num_classes, jnp.float32),
  }
  lr = 3e-3
  args = (
    zero,
    jax.random.key_data(jax.random.key(0)),
    jnp.asarray(ds.x_train),
    jnp.asarray(ds.y_train),
    jnp.array([lr, 0.9, config.reg_strength], jnp.float32),
  )
  acc = float(
    train.accuracy(epoch(*args), jnp.asarray(ds.x_test), jnp.asarray(ds.y_test))
  )
  section.add(
    Row(
      "pallas",
      f"{config.accuracy_dataset} softmax 1 epoch, Pallas, cosine, lr={lr:g}",
      seconds=timing.median_seconds(epoch, *args, repeats=repeats),
      accuracy=acc,
    ),
    log,
  )
  return section


# -- one run --------------------------------------------------------------------


def run(config: BenchConfig, log=print) -> dict[str, Section]:
  """Runs ``config.sections``; ``{"machine": ..., section: Section, ...}``."""
  config.validate()
  sections = {}
  wanted = set(config.sections)
  ceilings = pixels = float32 = None
  if {"epoch", "sweep"} & wanted:
    log("machine: measuring copy bandwidth and matmul rate")
    ceilings, rows = measure_ceilings(
      config.copy_bytes, config.matmul_size, config.repeats
    )
    sections["machine"] = Section()
    for row in rows:
      sections["machine"].add(row, log)
  if {"epoch", "sweep", "blocked", "pallas"} & wanted:
    log(
      f"data: {config.n_epoch} × {config.num_features} synthetic uint8 "
      f"pixels, {config.num_classes} classes"
    )
    pixels = cifar_shaped(
      config.n_epoch, config.num_features, config.num_classes
    )
    float32 = device_data(pixels, "float32")
  ds = None
  if {"accuracy", "pallas"} & wanted:
    ds = load_accuracy_dataset(config, log)
  for name in config.sections:
    log(f"== section {name}")
    if name == "loss":
      sections[name] = run_loss(config, log)
    elif name == "epoch":
      sections[name] = run_epoch(config, pixels, float32, ceilings, log)
    elif name == "accuracy":
      sections[name] = run_accuracy(config, ds, log)
    elif name == "sweep":
      sections[name] = run_sweep(config, float32, ceilings, log)
    elif name == "blocked":
      sections[name] = run_blocked(config, float32, log)
    elif name == "pallas":
      sections[name] = run_pallas(config, float32, ds, log)
  return sections
