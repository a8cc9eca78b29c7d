r"""Predict with a trained workdir's model: labels, class names and scores.

  python -m experiments.predict --workdir=runs/probe --input=npz:feats.npz \
      --output=runs/probe/predictions.csv
  python -m experiments.predict --workdir=runs/svm --input=svmlight:test.txt \
      --output=preds.npz
  python -m experiments.predict --workdir=runs/cifar --split=test \
      --input=folder:/path/to/cifar10-jpeg.tar.gz --output=preds.npz

The model is the checkpoint's (best-on-validation params when early stopping
kept them), with the preprocessing fitted at training and the class names
(``linear_jax.model``). Inputs with labels also report the accuracy. Sparse
inputs (svmlight, scipy.sparse ``.npz``) are read in the training feature
space: fewer features are padded, more refused. The output (``.npz``: labels
and predicted_class_names per example, scores, and classes, the list of class
names; or ``.csv``) is never overwritten, and one run at a time writes it
(``linear_jax.workdir.output_lock``).
"""

from __future__ import annotations

from absl import flags

from experiments import cli
from linear_jax import budget

flags.DEFINE_string("workdir", None, "a training run's output directory")
flags.DEFINE_string(
  "input",
  None,
  "npz:PATH (x, optional y; or a scipy.sparse.save_npz file), "
  "svmlight:PATH, or folder:PATH (images, ImageFolder layout)",
)
flags.DEFINE_string("output", None, "where to write predictions: .npz or .csv")
flags.DEFINE_enum(
  "split",
  "test",
  ["train", "val", "validation", "test"],
  "which split of an input holding several",
)

flags.DEFINE_string("memory_budget", None, budget.FLAG_HELP)

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from linear_jax import checks  # pylint: disable=g-import-not-at-top
  from linear_jax import model as model_lib  # pylint: disable=g-import-not-at-top

  for name in ("workdir", "input", "output"):
    if not FLAGS[name].value:
      raise checks.LinearJaxError(f"--{name} is required")
  result = model_lib.predict_file(
    FLAGS.workdir,
    FLAGS.input,
    FLAGS.output,
    split=FLAGS.split,
    memory_budget=FLAGS.memory_budget,
  )
  accuracy = (
    "" if result["accuracy"] is None else f"  accuracy {result['accuracy']:.4f}"
  )
  print(
    f"predicted {result['examples']} examples{accuracy} -> {result['output']}"
  )


if __name__ == "__main__":
  cli.start(main)
