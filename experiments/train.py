r"""Train one linear classifier and write metrics, summary, checkpoint, plots.

  python -m experiments.train --dataset=digits --loss=svm --workdir=runs/svm
  python -m experiments.train --flagfile=experiments/flags/cifar10_softmax.flags
  python -m experiments.train --workdir=runs/svm --restore   # evaluate
  python -m experiments.train --list_datasets
"""

from __future__ import annotations

import dataclasses
import json

from absl import flags
from absl import logging

from experiments import cli
from linear_jax.losses import LOSSES
from linear_jax.optimizers import OPTIMIZERS, SCHEDULES
from linear_jax.regularizers import REGULARIZERS

flags.DEFINE_string("dataset", "digits",
                    "a tfds name (cifar10, mnist, ...), folder:PATH, or an "
                    "embedded name; see --list_datasets")
flags.DEFINE_string("data_dir", None, "tfds data_dir / cache directory")
flags.DEFINE_enum("loss", "softmax", sorted(LOSSES), "loss L_i")
flags.DEFINE_float("margin", 1.0, "hinge margin Δ ≥ 0 (svm losses)")
flags.DEFINE_float("label_smoothing", 0.0, "ε in [0, 1] (softmax)")
flags.DEFINE_enum("reg", "l2", sorted(REGULARIZERS), "regularizer R(W)")
flags.DEFINE_float("reg_strength", 1e-4, "λ ≥ 0")
flags.DEFINE_enum("optimizer", "momentum", list(OPTIMIZERS), "optax optimizer")
flags.DEFINE_float("learning_rate", 1e-2, "learning rate > 0")
flags.DEFINE_float("momentum", 0.9, "momentum (momentum, nesterov)")
flags.DEFINE_float("weight_decay", 1e-4, "decoupled weight decay (adamw)")
flags.DEFINE_enum("schedule", "constant", list(SCHEDULES), "learning-rate schedule")
flags.DEFINE_integer("batch_size", 256, "minibatch size ≥ 1")
flags.DEFINE_bool("full_batch", False, "use the whole training set per step "
                  "(overrides --batch_size; needed by lbfgs)")
flags.DEFINE_integer("epochs", 10, "epochs")
flags.DEFINE_integer("seed", 0, "seed of the split and the permutations")
flags.DEFINE_bool("standardize", False, "divide features by their train std")
flags.DEFINE_bool("mirror_train", False, "augment training images with their "
                  "left-right mirror images (2N rows per epoch)")
flags.DEFINE_integer("validation_size", None, "held-out examples carved from train")
flags.DEFINE_integer("early_stopping_patience", 0,
                     "stop after this many epochs without better val accuracy (0: off)")
flags.DEFINE_string("workdir", "runs/train", "output directory")
flags.DEFINE_bool("resume", False, "continue from workdir's checkpoint")
flags.DEFINE_bool("restore", False, "only evaluate workdir's checkpoint on test")
flags.DEFINE_bool("plots", True, "write PNG plots")
flags.DEFINE_bool("list_datasets", False, "print the available datasets and exit")

FLAGS = flags.FLAGS

flags.register_validator("reg_strength", lambda v: v >= 0,
                         "λ must be ≥ 0 (e.g. --reg_strength=1e-4)")
flags.register_validator("margin", lambda v: v >= 0, "Δ must be ≥ 0")
flags.register_validator("label_smoothing", lambda v: 0 <= v <= 1,
                         "label_smoothing must lie in [0, 1]")
flags.register_validator("learning_rate", lambda v: v > 0,
                         "learning_rate must be > 0 (e.g. --learning_rate=1e-3)")
flags.register_validator("batch_size", lambda v: v >= 1,
                         "batch_size must be ≥ 1 (use --full_batch for all)")
flags.register_validator("epochs", lambda v: v >= 1, "epochs must be ≥ 1")
flags.register_validator("early_stopping_patience", lambda v: v >= 0,
                         "early_stopping_patience must be ≥ 0 (0: off)")


def run_config():
  from linear_jax.experiment import RunConfig
  names = {f.name for f in dataclasses.fields(RunConfig)}
  return RunConfig(**{name: FLAGS[name].value for name in names})


def main(argv):
  del argv
  if FLAGS.list_datasets:
    from linear_jax import data
    print(data.format_dataset_table())
    return
  from linear_jax import experiment
  if FLAGS.restore:
    print(json.dumps(experiment.evaluate_checkpoint(FLAGS.workdir, FLAGS.data_dir)))
    return
  summary = experiment.run(run_config())
  logging.info("summary: %s", {k: summary[k] for k in (
      "test_accuracy", "val_accuracy", "train_seconds", "compile_seconds")})
  print(f"test accuracy {summary['test_accuracy']:.4f}  val accuracy "
        f"{summary['val_accuracy']:.4f}  train {summary['train_seconds']:.2f} s  "
        f"-> {FLAGS.workdir}")


if __name__ == "__main__":
  cli.start(main)
