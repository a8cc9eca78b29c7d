"""``make run``: the main job, offline, in well under a minute on 2 cores.

Trains the multiclass SVM and the softmax classifier on scikit-learn's 8×8
digits (shipped inside the package: nothing is downloaded), prints their
accuracy table and the lecture's worked examples, and writes the curves and
the learned weights as class templates under ``runs/main-<time>/``.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import flags, logging

from experiments import cli

flags.DEFINE_string("dataset", "digits", "dataset for the main job")
flags.DEFINE_integer("epochs", 20, "epochs per classifier")
flags.DEFINE_string(
  "workdir", None, "output directory (default runs/main-<time>)"
)
FLAGS = flags.FLAGS

RECIPES = {  # picked by hand on digits' validation split
  "svm": dict(loss="svm", learning_rate=3e-3, reg_strength=1e-3),
  "softmax": dict(loss="softmax", learning_rate=1e-2, reg_strength=1e-4),
}


def lecture_examples() -> str:
  import linear_jax as lj
  from linear_jax import lecture

  svm = np.asarray(
    lj.multiclass_hinge(
      lecture.CAT_CAR_FROG_SCORES, lecture.CAT_CAR_FROG_LABELS
    )
  )
  p = np.asarray(lj.softmax_probabilities(lecture.CAT_CAR_FROG_SCORES[:1]))[0]
  ce = float(
    lj.softmax_cross_entropy(lecture.CAT_CAR_FROG_SCORES[:1], np.array([0]))[0]
  )
  fmt = lambda values: "[" + ", ".join(f"{v:.2f}" for v in values) + "]"
  return (
    f"lecture: SVM losses cat/car/frog = {fmt(svm)} (mean "
    f"{svm.mean():.2f}); softmax on cat p = {fmt(p)}, L = {ce:.2f}"
  )


def main(argv):
  del argv
  from linear_jax import train

  workdir = FLAGS.workdir or os.path.join(
    "runs", time.strftime("main-%Y%m%d-%H%M%S")
  )
  rows = []
  for name, recipe in RECIPES.items():
    logging.info("training %s on %s", name, FLAGS.dataset)
    summary = train.train_and_evaluate(
      train.RunConfig(
        dataset=FLAGS.dataset, epochs=FLAGS.epochs, batch_size=64, **recipe
      ),
      os.path.join(workdir, name),
    )
    rows.append((name, summary))
  print(lecture_examples())
  print(
    f"\n{'classifier':<10} {'train acc':>9} {'val acc':>8} {'test acc':>9} "
    f"{'train s':>8}"
  )
  for name, s in rows:
    print(
      f"{name:<10} {s['train_accuracy']:>9.4f} {s['val_accuracy']:>8.4f} "
      f"{s['test_accuracy']:>9.4f} {s['train_seconds']:>8.2f}"
    )
  print(
    "\nplots (learning curves, weights as class templates) and checkpoints:"
  )
  for name, s in rows:
    for path in s.get("plots", []) + [
      os.path.join(workdir, name, "checkpoint.npz")
    ]:
      print("  " + path)


if __name__ == "__main__":
  cli.start(main)
