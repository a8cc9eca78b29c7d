r"""Sweep losses × regularizers × λ × learning rates in one compiled program.

  python -m experiments.sweep --dataset=digits --losses=svm,softmax \
      --reg_strengths=logspace:1e-5:1e-1:5 --learning_rates=logspace:1e-3:1:4 \
      --epochs=10 --workdir=runs/sweep_digits
  python -m experiments.sweep --flagfile=experiments/flags/cifar10_sweep.flags

  # two hosts (or two processes on one): the same command on each, plus
  #   --num_processes=2 --process_id=<0|1> --coordinator_address=HOST0:1234

Writes results.csv, results.md, sweep_summary.json and heatmap_<loss>.png
(validation accuracy over learning rate × λ, each cell the best over Δ and
seeds; heatmap_<loss>_<reg>.png when --regs has several) to --workdir (see
linear_jax/sweep/experiment.py), and prints the best configuration of each
loss (selected on validation, evaluated once on test) and a sha256 of every
result, the same on every process.

Value lists (--reg_strengths, --learning_rates, --margins) are comma lists of
numbers and ranges: logspace:START:STOP:NUM (NUM log-spaced values, both ends
included, START, STOP > 0), linspace:START:STOP:NUM; e.g. 0,logspace:1e-4:1e-1:4.
"""

from __future__ import annotations

import sys

from absl import flags
from absl import logging

from experiments import cli
from linear_jax.optimizers import OPTIMIZERS, SCHEDULES

_VALUES = ("comma list of numbers and ranges logspace:START:STOP:NUM / "
           "linspace:START:STOP:NUM, e.g. 0,logspace:1e-4:1e-1:4")

flags.DEFINE_string("dataset", "digits",
                    "a tfds name, folder:PATH, or an embedded name (see "
                    "python -m experiments.train --list_datasets)")
flags.DEFINE_string("data_dir", None, "tfds data_dir / cache directory")
flags.DEFINE_string("losses", "svm,softmax",
                    "comma list of losses (svm, squared_svm, crammer_singer, "
                    "softmax); each is its own compiled program")
flags.DEFINE_string("regs", "l2", "comma list of regularizers (l2, l1, "
                    "elastic_net, none); each is its own compiled program")
flags.DEFINE_string("reg_strengths", "logspace:1e-5:1e-1:5",
                    f"λ values ≥ 0: {_VALUES}")
flags.DEFINE_string("learning_rates", "logspace:1e-3:1e-1:3",
                    f"learning rates > 0: {_VALUES}")
flags.DEFINE_string("margins", "1", f"hinge margins Δ ≥ 0 (svm losses only): "
                    f"{_VALUES}")
flags.DEFINE_string("seeds", "", "comma list of training seeds (minibatch "
                    "permutations), each a separate group; empty: --seed")
flags.DEFINE_enum("optimizer", "momentum", list(OPTIMIZERS),
                  "optax optimizer (static: one per sweep)")
flags.DEFINE_enum("schedule", "constant", list(SCHEDULES), "learning-rate schedule")
flags.DEFINE_float("momentum", 0.9, "momentum (momentum, nesterov)")
flags.DEFINE_float("weight_decay", 1e-4, "decoupled weight decay (adamw)")
flags.DEFINE_float("label_smoothing", 0.0, "ε in [0, 1] (softmax)")
flags.DEFINE_integer("batch_size", 256, "minibatch size ≥ 1")
flags.DEFINE_bool("full_batch", False, "the whole training set per step")
flags.DEFINE_integer("epochs", 10, "epochs")
flags.DEFINE_integer("seed", 0, "seed of the validation split (and of the "
                     "permutations unless --seeds)")
flags.DEFINE_bool("standardize", False, "divide features by their train std")
flags.DEFINE_integer("validation_size", None, "held-out examples carved from train")
flags.DEFINE_integer("chunk_size", 0, "at most this many configurations per "
                     "compiled call, rounded up to a multiple of the device "
                     "count; 0: as many as fit in device memory")
flags.DEFINE_enum("sweep_algorithm", "auto", ["auto", "vmap", "blocked"],
                  "vmap: one vmapped step per minibatch; blocked: plain SGD "
                  "(--optimizer=sgd, l2/none) with the weight updates delayed "
                  "over --block_steps minibatches, the same numbers with "
                  "k-fold less weight traffic but more FLOPs (for wide GPU "
                  "sweeps; not yet measured there); auto: vmap for now")
flags.DEFINE_integer("block_steps", 8, "minibatches per block of "
                     "--sweep_algorithm=blocked (≥ 1)")
flags.DEFINE_string("workdir", "runs/sweep", "output directory")
flags.DEFINE_bool("overwrite", False, "replace an existing sweep in --workdir")
flags.DEFINE_bool("resume", False, "continue the sweep in --workdir from its "
                  "sweep_checkpoint.npz (same flags); finished chunks are "
                  "not recomputed")
flags.DEFINE_float("checkpoint_seconds", 300.0, "inside a chunk, save the "
                   "sweep's progress at most this often (it is always saved "
                   "after each chunk); 0: every epoch")
flags.DEFINE_bool("plots", True, "write heatmap PNGs")
flags.DEFINE_string("coordinator_address", None,
                    "multi-process: HOST:PORT of process 0 (same everywhere)")
flags.DEFINE_integer("num_processes", 1, "multi-process: number of processes")
flags.DEFINE_integer("process_id", 0, "multi-process: this process, 0..n-1")

FLAGS = flags.FLAGS

flags.register_validator("batch_size", lambda v: v >= 1,
                         "batch_size must be ≥ 1 (use --full_batch for all)")
flags.register_validator("epochs", lambda v: v >= 1, "epochs must be ≥ 1")
flags.register_validator("block_steps", lambda v: v >= 1,
                         "block_steps must be ≥ 1")
flags.register_validator("checkpoint_seconds", lambda v: v >= 0,
                         "checkpoint_seconds must be ≥ 0 (0: every epoch)")
flags.register_validator("chunk_size", lambda v: v >= 0,
                         "chunk_size must be ≥ 0 (0: automatic)")


def run_config():
  """The flags as a validated ``SweepRunConfig`` (pure Python, no JAX work)."""
  from linear_jax import losses, regularizers  # pylint: disable=g-import-not-at-top
  from linear_jax.sweep import grid as grid_lib  # pylint: disable=g-import-not-at-top
  from linear_jax.sweep.experiment import SweepRunConfig  # pylint: disable=g-import-not-at-top
  config = SweepRunConfig(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
      losses=grid_lib.parse_names(FLAGS.losses, "losses", losses.LOSSES, "loss"),
      regs=grid_lib.parse_names(FLAGS.regs, "regs", regularizers.REGULARIZERS,
                                "regularizer"),
      reg_strengths=grid_lib.parse_values(FLAGS.reg_strengths, "reg_strengths"),
      learning_rates=grid_lib.parse_values(FLAGS.learning_rates,
                                           "learning_rates", strict=True),
      margins=grid_lib.parse_values(FLAGS.margins, "margins"),
      seeds=grid_lib.parse_ints(FLAGS.seeds, "seeds") if FLAGS.seeds else None,
      optimizer=FLAGS.optimizer, schedule=FLAGS.schedule,
      momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
      label_smoothing=FLAGS.label_smoothing, batch_size=FLAGS.batch_size,
      full_batch=FLAGS.full_batch, epochs=FLAGS.epochs, seed=FLAGS.seed,
      standardize=FLAGS.standardize, validation_size=FLAGS.validation_size,
      chunk_size=FLAGS.chunk_size, algorithm=FLAGS.sweep_algorithm,
      block_steps=FLAGS.block_steps, workdir=FLAGS.workdir,
      overwrite=FLAGS.overwrite, resume=FLAGS.resume,
      checkpoint_seconds=FLAGS.checkpoint_seconds, plots=FLAGS.plots,
      command="python -m experiments.sweep " + " ".join(sys.argv[1:]))
  config.grid()  # validates names and ranges before any process waits
  config.check_algorithm()
  return config


def main(argv):
  del argv
  config = run_config()
  from linear_jax.sweep import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                         FLAGS.process_id)
  from linear_jax.sweep import experiment  # pylint: disable=g-import-not-at-top
  summary = experiment.run(config)
  logging.info("sweep: train %.2f s, compile %.2f s, %d configurations",
               summary["train_seconds"], summary["compile_seconds"],
               summary["num_configs"])
  for loss, best in summary["best"].items():
    margin = "" if best["margin"] is None else f", Δ={best['margin']:g}"
    print(f"best {loss}: val {best['val_accuracy']:.4f}  test "
          f"{best['test_accuracy']:.4f}  ({best['reg']}, "
          f"λ={best['reg_strength']:g}, lr={best['learning_rate']:g}{margin}, "
          f"seed {best['seed']})")
  for loss in summary["all_diverged"]:
    print(f"best {loss}: none, every configuration diverged")
  print(f"sweep: {summary['num_configs']} configurations, "
        f"{summary['num_diverged']} diverged, on {len(summary['devices'])} "
        f"devices in {summary['num_processes']} processes; results sha256 "
        f"{summary['results_sha256']} -> {config.workdir}")


if __name__ == "__main__":
  cli.start(main)
