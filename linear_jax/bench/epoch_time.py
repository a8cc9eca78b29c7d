"""Section ``epoch``: one training epoch against its floor, per storage.

One epoch of ``training.make_epoch_fn`` (softmax, momentum, constant
learning rate; the validation split of 1,000 rows is evaluated inside the
epoch, as in training) over N synthetic rows of D features, for

- storage float32 (X preprocessed once, 4 bytes per feature) and uint8 (raw
  pixels shifted by the mean inside each minibatch, 1 byte per feature);
- batch B with ``unroll=1`` and with the larger unroll, and the full batch;
- float32 at batch B as one fused C++ XLA FFI call (``kernels.cpu_epoch``),
  where g++ can build it.

The floor of an epoch is ``benchmarking.epoch_floor``: max(X read once /
copy bandwidth, 4·N·D·C FLOPs / matmul rate), both ceilings measured in the
same run. Ratios are measured time / floor (≥ 1; 1 is the ceiling).
"""

from __future__ import annotations

from linear_jax import benchmarking
from linear_jax import training
from linear_jax.bench.report import Row
from linear_jax.bench.report import Section
from linear_jax.bench.synthetic import STORAGES


def epoch_config(batch_size: int | None, unroll: int = 1
                 ) -> training.TrainConfig:
  """The timed program: softmax, momentum (``batch_size`` None: full batch)."""
  return training.TrainConfig(loss="softmax", optimizer="momentum",
                              batch_size=batch_size, epochs=10, unroll=unroll)


def compile_epoch(config: training.TrainConfig, data: training.DeviceData,
                  num_classes: int):
  """``(compiled epoch, state, hparams)``, compiled ahead of any timing."""
  n, d = data.x_train.shape
  hparams = training.make_hparams(learning_rate=1e-7)
  state = training.init_state(config, hparams, 0, d, num_classes, n)
  compiled = training.make_epoch_fn(config).lower(state, hparams, data).compile()
  return compiled, state, hparams


def time_epoch(config: training.TrainConfig, data: training.DeviceData,
               num_classes: int, repeats: int) -> float:
  """Median seconds of one epoch (compiled first, warmed up, blocked on)."""
  compiled, state, hparams = compile_epoch(config, data, num_classes)
  return benchmarking.median_seconds(compiled, state, hparams, data,
                                     repeats=repeats)


def variants(batch_size: int, unroll: int) -> list[tuple[int | None, int]]:
  """(batch, unroll) pairs: B with unroll 1 and ``unroll``, then full batch."""
  pairs = [(batch_size, 1)]
  if unroll != 1:
    pairs.append((batch_size, unroll))
  return pairs + [(None, 1)]


def run(datas: dict, ceilings: dict, *, num_classes: int, batch_size: int,
        unroll: int, repeats: int, log=print) -> Section:
  """Times every (storage, batch, unroll); a floor row per storage.

  Args:
    datas: ``{"float32": DeviceData, "uint8": DeviceData}`` of the same rows.
    ceilings: ``{"bandwidth": bytes/s, "flop_rate": FLOP/s}``.
    num_classes: C.
    batch_size: B of the minibatch variants.
    unroll: the larger unroll, timed next to unroll = 1.
    repeats: the median is over this many epochs, after one warm-up epoch.
    log: progress printer.
  """
  section = Section()
  for storage, data in datas.items():
    n, d = data.x_train.shape
    floor = benchmarking.epoch_floor(
        n, d, num_classes, bytes_per_feature=STORAGES[storage],
        bandwidth=ceilings["bandwidth"], flop_rate=ceilings["flop_rate"])
    section.add(Row(
        "epoch", f"floor: 1 epoch, {storage} X ({STORAGES[storage]} B/feature)",
        seconds=floor["floor_seconds"],
        note=f"read {floor['read_seconds'] * 1e3:.3g} ms, compute "
             f"{floor['compute_seconds'] * 1e3:.3g} ms; N={n} D={d}",
        extra={"storage": storage, **floor}), log)
    for batch, k in variants(batch_size, unroll):
      name = f"B={batch} unroll={k}" if batch else "full batch"
      log(f"epoch {storage} {name}: compiling and timing {repeats} epochs")
      seconds = time_epoch(epoch_config(batch, k), data, num_classes, repeats)
      section.add(Row(
          "epoch", f"1 epoch softmax momentum, {storage} X, {name}",
          seconds=seconds, rate=n / seconds, rate_unit="examples/s",
          ratio=seconds / floor["floor_seconds"], ratio_of="time/floor",
          extra={"storage": storage, "batch_size": batch or n, "unroll": k,
                 "floor_seconds": floor["floor_seconds"]}), log)
    if storage == "float32":
      fused_row(section, data, floor["floor_seconds"], num_classes=num_classes,
                batch_size=batch_size, repeats=repeats, log=log)
  return section


def fused_row(section: Section, data, floor_seconds: float, *, num_classes: int,
              batch_size: int, repeats: int, log=print) -> None:
  """The same epoch as one fused C++ FFI call (``kernels.cpu_epoch``), if
  it builds here; otherwise a note saying why not."""
  from linear_jax.kernels import cpu_epoch  # pylint: disable=g-import-not-at-top
  missing = cpu_epoch.available()
  if missing:
    section.notes.append(f"fused CPU epoch skipped: {missing}")
    log(f"epoch: fused CPU epoch skipped ({missing})")
    return
  config = epoch_config(batch_size)
  n, d = data.x_train.shape
  log(f"epoch float32 B={batch_size} fused C++ FFI: timing {repeats} epochs")
  hparams = training.make_hparams(learning_rate=1e-7)
  state = training.init_state(config, hparams, 0, d, num_classes, n)
  seconds = benchmarking.median_seconds(cpu_epoch.fused_epoch(config), state,
                                        hparams, data, repeats=repeats)
  section.add(Row(
      "epoch", f"1 epoch softmax momentum, float32 X, B={batch_size}, fused "
      "C++ FFI call (kernels.cpu_epoch)", seconds=seconds, rate=n / seconds,
      rate_unit="examples/s", ratio=seconds / floor_seconds,
      ratio_of="time/floor",
      extra={"storage": "float32", "batch_size": batch_size, "fused": True,
             "floor_seconds": floor_seconds}), log)
