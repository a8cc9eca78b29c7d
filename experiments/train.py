r"""Train one linear classifier and write metrics, summary, checkpoint, plots.

  python -m experiments.train --dataset=digits --loss=svm --workdir=runs/svm
  python -m experiments.train --flagfile=experiments/flags/cifar10_softmax.flags
  python -m experiments.train --workdir=runs/svm --resume --epochs=20
  python -m experiments.train --workdir=runs/svm --restore   # evaluate
  python -m experiments.train --list_datasets

Every setting is a field of ``linear_jax.train.RunConfig``; its flags, help
texts and checks come from there. What goes in --workdir:
``linear_jax/train/run.py``.
"""

from __future__ import annotations

import json

from absl import flags, logging

from experiments import cli
from linear_jax.train.run import RunConfig

cli.define_flags(RunConfig)
flags.adopt_module_key_flags(cli)  # --help lists the generated flags
flags.DEFINE_string("workdir", "runs/train", "output directory")
flags.DEFINE_bool("resume", False, "continue from workdir's checkpoint")
flags.DEFINE_bool(
  "restore", False, "only evaluate workdir's checkpoint on test"
)
flags.DEFINE_bool(
  "list_datasets", False, "print the available datasets and exit"
)

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from linear_jax import train  # pylint: disable=g-import-not-at-top

  if FLAGS.list_datasets:
    from linear_jax import data  # pylint: disable=g-import-not-at-top

    print(data.format_dataset_table())
    return
  if FLAGS.restore:
    print(
      json.dumps(
        train.evaluate_checkpoint(
          FLAGS.workdir,
          data_dir=FLAGS.data_dir,
          memory_budget=FLAGS.memory_budget,
        )
      )
    )
    return
  config = cli.config_from_flags(RunConfig).validate()
  summary = train.train_and_evaluate(config, FLAGS.workdir, resume=FLAGS.resume)
  logging.info(
    "summary: %s",
    {
      k: summary[k]
      for k in (
        "test_accuracy",
        "val_accuracy",
        "train_seconds",
        "compile_seconds",
      )
    },
  )
  fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
  print(
    f"test accuracy {fmt(summary['test_accuracy'])}  val accuracy "
    f"{fmt(summary['val_accuracy'])}  train "
    f"{summary['train_seconds']:.2f} s  -> {FLAGS.workdir}"
  )


if __name__ == "__main__":
  cli.start(main)
