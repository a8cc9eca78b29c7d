r"""The CPU benchmark (``make bench``): progress lines, then one markdown table.

  python -m benchmarks.cpu                        # all sections (make bench)
  python -m benchmarks.cpu --sections=epoch,sweep --repeats=3
  python -m benchmarks.cpu --tiny --out=/tmp/b.json   # seconds: the smoke test

Run from the repository root. Sections (``benchmarks/sections.py``; every
timing warms up, excludes compilation, blocks on the result and is the median
of ``--repeats``):

- ``loss``: loss + gradient examples/s at N=``--n_loss`` × 3,072, C=10, for
  each loss, ``jit(value_and_grad(objective))`` vs vectorized NumPy;
- ``epoch``: one epoch at N=``--n_epoch`` × 3,072 (synthetic uint8 pixels),
  float32 vs uint8 storage, B=256 (unroll 1 and ``--unroll``), full batch,
  the fused C++ epoch and PyTorch, against the floor from the copy bandwidth
  and matmul rate measured here;
- ``accuracy``: training seconds to 40 % test accuracy on
  ``--accuracy_dataset`` (the shared CIFAR-10 JPEG set; skipped with a note
  when absent), softmax and SVM, next to scikit-learn (and PyTorch, if
  installed) on the same arrays;
- ``sweep``: 64 configurations × 1 epoch vs 1, and vs the FLOP floor;
- ``blocked`` (not run by default): the blocked sweep against ``vmap``;
- ``pallas``: GPU only (``benchmarks/gpu.py``).

Writes ``--out`` (JSON: header and every section's rows and notes).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import flags

from benchmarks import report, timing
from benchmarks import sections as sections_lib
from experiments import cli
from linear_jax.checks import LinearJaxError

FULL = sections_lib.FULL

flags.DEFINE_list(
  "sections",
  list(FULL.sections),
  f"comma list of sections to run, of {','.join(sections_lib.SECTIONS)}",
)
flags.DEFINE_integer("n_loss", FULL.n_loss, "N of the loss section")
flags.DEFINE_integer(
  "n_epoch", FULL.n_epoch, "N of the epoch, sweep and blocked sections"
)
flags.DEFINE_integer(
  "repeats",
  FULL.repeats,
  "timed repeats per measurement (the median is reported)",
)
flags.DEFINE_integer(
  "unroll", FULL.unroll, "the larger lax.scan unroll, timed next to unroll=1"
)
flags.DEFINE_integer(
  "sweep_configs",
  FULL.sweep_configs,
  "K configurations of the sweep and blocked sections",
)
flags.DEFINE_list(
  "block_steps",
  [str(k) for k in FULL.block_steps],
  "block sizes k of the blocked section",
)
flags.DEFINE_integer(
  "accuracy_batch_size",
  FULL.accuracy_batch_size,
  "minibatch size of the time-to-accuracy recipes",
)
flags.DEFINE_string(
  "accuracy_dataset",
  FULL.accuracy_dataset,
  "dataset of the accuracy section: a linear_jax.data name "
  "or folder:PATH (a folder or .tar.gz of split/class/image)",
)
flags.DEFINE_enum(
  "optimizer",
  FULL.optimizer,
  ["momentum", "nesterov"],
  "optimizer of the time-to-accuracy recipes",
)
flags.DEFINE_float(
  "softmax_lr", FULL.softmax_lr, "learning rate of the softmax recipe"
)
flags.DEFINE_float("svm_lr", FULL.svm_lr, "learning rate of the SVM recipe")
flags.DEFINE_float(
  "reg_strength", FULL.reg_strength, "λ of the L2 penalty λ ΣW²"
)
flags.DEFINE_float(
  "target_accuracy",
  FULL.target_accuracy,
  "test accuracy the recipes must reach",
)
flags.DEFINE_integer("max_epochs", FULL.max_epochs, "longest recipe tried")
flags.DEFINE_bool(
  "skip_slow_peers",
  FULL.skip_slow_peers,
  "skip scikit-learn's LogisticRegression (~40 s)",
)
flags.DEFINE_bool(
  "tiny",
  False,
  "tiny sizes (N=512, D=48, 8 sweep configs, 1 repeat), digits "
  "instead of CIFAR-10, no slow peers: a smoke run in seconds; "
  "flags given explicitly still apply",
)
flags.DEFINE_string(
  "out", "runs/benchmark/benchmark.json", "JSON file to write ('' for none)"
)

FLAGS = flags.FLAGS

#: Flags that, when given, override the preset's field of the same name.
OVERRIDES = (
  "n_loss",
  "n_epoch",
  "repeats",
  "unroll",
  "sweep_configs",
  "accuracy_batch_size",
  "accuracy_dataset",
  "optimizer",
  "softmax_lr",
  "svm_lr",
  "reg_strength",
  "target_accuracy",
  "max_epochs",
  "skip_slow_peers",
)


def bench_config(preset: sections_lib.BenchConfig) -> sections_lib.BenchConfig:
  """``TINY`` or ``preset``, with ``--sections`` and every explicitly given
  flag applied.
  """
  base = sections_lib.TINY if FLAGS.tiny else preset
  given = {name: FLAGS[name].value for name in OVERRIDES if FLAGS[name].present}
  if FLAGS["block_steps"].present:
    try:
      given["block_steps"] = tuple(int(k) for k in FLAGS.block_steps)
    except ValueError:
      raise LinearJaxError(
        f"--block_steps={','.join(FLAGS.block_steps)} must be a comma list "
        "of integers, e.g. 4,8"
      ) from None
  sections = tuple(s.strip() for s in FLAGS.sections if s.strip())
  check_out_path(FLAGS.out)
  return dataclasses.replace(base, sections=sections, **given).validate()


def check_out_path(out: str) -> None:
  """Fails before any timing if ``--out`` cannot be written as a file."""
  if not out:
    return
  if os.path.isdir(out):
    raise LinearJaxError(f"--out {out} is a folder; name a .json file in it")
  probe = os.path.dirname(os.path.abspath(out))
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise LinearJaxError(
      f"--out {out}: {probe} is a file, not a folder; choose another --out"
    )


def run(preset: sections_lib.BenchConfig, command: str) -> None:
  """Runs the configured sections; prints the header and the table, writes
  ``--out``.
  """
  config = bench_config(preset)
  header = timing.header(f"{command} {' '.join(sys.argv[1:])}".strip())
  header["config"] = dataclasses.asdict(config)
  start = time.perf_counter()

  def progress(message: str) -> None:
    print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

  for key in ("command", "date", "device", "precision", "versions"):
    progress(f"{key}: {header[key]}")
  sections = sections_lib.run(config, log=progress)
  header["total_seconds"] = time.perf_counter() - start
  print()
  for key in ("command", "date", "device", "precision"):
    print(f"{key}: {header[key]}")
  print()
  print(report.markdown_table(sections))
  notes = report.notes_text(sections)
  if notes:
    print("\n" + notes)
  if FLAGS.out:
    path = report.write_json(FLAGS.out, report.to_json(header, sections))
    print(f"\nwrote {path}")


def main(argv):
  """Runs every section (``FULL``) and writes the JSON report."""
  del argv
  run(FULL, "python -m benchmarks.cpu")


if __name__ == "__main__":
  cli.start(main)
