r"""The CPU benchmark (issue 6): progress lines, then one markdown table.

  python -m experiments.benchmark                  # all sections (make bench)
  python -m experiments.benchmark --sections=loss,sweep --repeats=3
  python -m experiments.benchmark --tiny --out=/tmp/b.json   # seconds: the test

Sections (``linear_jax.bench``; every timing warms up, excludes compilation,
blocks on the result and is the median of ``--repeats``):

- ``loss``: loss + gradient examples/s at N=``--n_loss`` × 3,072, C=10, for
  each loss, ``jit(value_and_grad(objective))`` vs vectorized NumPy;
- ``epoch``: one epoch at N=``--n_epoch`` × 3,072 (synthetic uint8 pixels),
  float32 vs uint8 storage, B=256 (unroll 1 and ``--unroll``) and full batch,
  against the floor from the copy bandwidth and matmul rate measured here;
- ``accuracy``: training seconds to 40 % test accuracy on the shared
  CIFAR-10 JPEG set (skipped with a note when absent), softmax and SVM,
  next to scikit-learn (and PyTorch, if installed) on the same arrays;
- ``sweep``: 64 configurations × 1 epoch vs 1, and vs the FLOP floor.

Writes ``--out`` (JSON: header and every section's rows and notes).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from absl import flags

from experiments import cli
from linear_jax.bench.config import FULL
from linear_jax.bench.config import SECTIONS
from linear_jax.bench.config import TINY
from linear_jax.checks import LinearJaxError

flags.DEFINE_list("sections", list(SECTIONS),
                  f"comma list of sections to run, of {','.join(SECTIONS)}")
flags.DEFINE_integer("n_loss", FULL.n_loss, "N of the loss section")
flags.DEFINE_integer("n_epoch", FULL.n_epoch,
                     "N of the epoch and sweep sections")
flags.DEFINE_integer("repeats", FULL.repeats,
                     "timed repeats per measurement (the median is reported)")
flags.DEFINE_integer("unroll", FULL.unroll,
                     "the larger lax.scan unroll, timed next to unroll=1")
flags.DEFINE_integer("sweep_configs", FULL.sweep_configs,
                     "K configurations of the sweep section")
flags.DEFINE_integer("accuracy_batch_size", FULL.accuracy_batch_size,
                     "minibatch size of the time-to-accuracy recipes")
flags.DEFINE_float("softmax_lr", FULL.softmax_lr,
                   "learning rate of the softmax recipe")
flags.DEFINE_float("svm_lr", FULL.svm_lr, "learning rate of the SVM recipe")
flags.DEFINE_float("reg_strength", FULL.reg_strength,
                   "λ of the L2 penalty λ ΣW²")
flags.DEFINE_float("target_accuracy", FULL.target_accuracy,
                   "test accuracy the recipes must reach")
flags.DEFINE_integer("max_epochs", FULL.max_epochs, "longest recipe tried")
flags.DEFINE_bool("skip_slow_peers", FULL.skip_slow_peers,
                  "skip scikit-learn's LogisticRegression (~40 s)")
flags.DEFINE_bool("tiny", False,
                  "tiny sizes (N=512, D=48, 8 sweep configs, 1 repeat), digits "
                  "instead of CIFAR-10, no slow peers: a smoke run in seconds; "
                  "flags given explicitly still apply")
flags.DEFINE_string("out", "runs/benchmark/benchmark.json",
                    "JSON file to write ('' for none)")

FLAGS = flags.FLAGS

#: Flags that, when given, override the preset's field of the same name.
OVERRIDES = ("n_loss", "n_epoch", "repeats", "unroll", "sweep_configs",
             "accuracy_batch_size",
             "softmax_lr", "svm_lr", "reg_strength", "target_accuracy",
             "max_epochs", "skip_slow_peers")


def bench_config():
  """``TINY`` or ``FULL``, with every explicitly given flag applied."""
  base = TINY if FLAGS.tiny else FULL
  given = {name: FLAGS[name].value for name in OVERRIDES if FLAGS[name].present}
  sections = tuple(s.strip() for s in FLAGS.sections if s.strip())
  if not sections:
    raise LinearJaxError("--sections is empty; valid: loss,epoch,accuracy,sweep")
  check_out_path(FLAGS.out)
  return dataclasses.replace(base, sections=sections, **given).validate()


def check_out_path(out: str) -> None:
  """Fails before any timing if ``--out`` cannot be written as a file."""
  if not out:
    return
  if os.path.isdir(out):
    raise LinearJaxError(f"--out {out} is a folder; name a .json file in it")
  parent = os.path.dirname(os.path.abspath(out))
  probe = parent
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise LinearJaxError(
        f"--out {out}: {probe} is a file, not a folder; choose another --out")


def main(argv):
  del argv
  from linear_jax import bench  # pylint: disable=import-outside-toplevel
  from linear_jax.bench import machine  # pylint: disable=import-outside-toplevel
  config = bench_config()
  header = machine.header("python -m experiments.benchmark " +
                          " ".join(sys.argv[1:]))
  header["config"] = dataclasses.asdict(config)
  start = time.perf_counter()

  def progress(message: str) -> None:
    print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

  for key in ("command", "date", "device", "precision", "versions"):
    progress(f"{key}: {header[key]}")
  sections = bench.run(config, log=progress)
  header["total_seconds"] = time.perf_counter() - start
  print()
  for key in ("command", "date", "device", "precision"):
    print(f"{key}: {header[key]}")
  print()
  print(bench.markdown_table(sections))
  notes = bench.notes_text(sections)
  if notes:
    print("\n" + notes)
  if FLAGS.out:
    path = bench.write_json(FLAGS.out, bench.to_json(header, sections))
    print(f"\nwrote {path}")


if __name__ == "__main__":
  cli.start(main)
