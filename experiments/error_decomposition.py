r"""Measure the error decomposition of linear classifiers: Bayes, approximation,
estimation, optimization (Bottou & Bousquet 2007).

  python -m experiments.error_decomposition --workdir=runs/decomposition
  python -m experiments.error_decomposition \
      --flagfile=experiments/flags/decomposition_cifar10.flags

Writes decomposition.json, decomposition.md (every term with its standard
error, per dataset, loss, n and budget), decomposition.png (one stacked bar
per dataset and loss) and terms_vs_n.png to --workdir, and refuses a workdir
that holds them already. Every setting is a field of
``linear_jax.decomposition.DecompositionConfig``; its flags, help texts and
checks come from there. See linear_jax/decomposition.py for the method.
"""

from __future__ import annotations

from absl import flags

from experiments import cli
from linear_jax.decomposition import DecompositionConfig

cli.define_flags(DecompositionConfig)
flags.adopt_module_key_flags(cli)  # --help lists the generated flags
flags.DEFINE_string("workdir", None, "output folder (must not hold outputs)")
flags.mark_flag_as_required("workdir")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  from linear_jax import decomposition  # pylint: disable=g-import-not-at-top

  config = cli.config_from_flags(DecompositionConfig).check()
  result = decomposition.run_experiment(config, FLAGS.workdir)
  print(decomposition.TABLE_HEADER)
  for row in decomposition.reference_rows(result):
    print(decomposition.table_row(row))
  print(f"{result['seconds']:.1f} s -> {FLAGS.workdir}")


if __name__ == "__main__":
  cli.start(main)
