"""One benchmark run: the selected sections in order, their rows and notes.

The ceilings (copy bandwidth, matmul rate) are measured once, before the
first section that needs them (``epoch``, ``sweep``); the synthetic
CIFAR-shaped data are built once and shared by those two sections.
"""

from __future__ import annotations

from linear_jax.bench import epoch_time
from linear_jax.bench import loss_throughput
from linear_jax.bench import machine
from linear_jax.bench import sweep_amortization
from linear_jax.bench import synthetic
from linear_jax.bench import time_to_accuracy
from linear_jax.bench.config import BenchConfig
from linear_jax.bench.report import Section


def run(config: BenchConfig, log=print) -> dict[str, Section]:
  """Runs ``config.sections``; ``{"machine": ..., section: Section, ...}``."""
  config.validate()
  sections = {}
  c, d, b = config.num_classes, config.num_features, config.batch_size
  ceilings = pixels = float32 = None
  if {"epoch", "sweep"} & set(config.sections):
    log("machine: measuring copy bandwidth and matmul rate")
    ceilings, rows = machine.measure_ceilings(
        config.copy_bytes, config.matmul_size, config.repeats)
    sections["machine"] = Section()
    for row in rows:
      sections["machine"].add(row, log)
    log(f"data: {config.n_epoch} × {d} synthetic uint8 pixels, {c} classes")
    pixels = synthetic.cifar_shaped(config.n_epoch, d, c)
    float32 = synthetic.device_data(pixels, "float32")
  for name in config.sections:
    log(f"== section {name}")
    if name == "loss":
      sections[name] = loss_throughput.run(
          num_examples=config.n_loss, num_features=d, num_classes=c,
          reg_strength=config.reg_strength, repeats=config.repeats, log=log)
    elif name == "epoch":
      datas = {"float32": float32,
               "uint8": synthetic.device_data(pixels, "uint8")}
      sections[name] = epoch_time.run(
          datas, ceilings, num_classes=c, batch_size=b, unroll=config.unroll,
          repeats=config.repeats, log=log)
    elif name == "accuracy":
      sections[name] = time_to_accuracy.run(config, log=log)
    elif name == "sweep":
      sections[name] = sweep_amortization.run(
          float32, ceilings, num_configs=config.sweep_configs, num_classes=c,
          batch_size=b, repeats=config.repeats, log=log)
  return sections
