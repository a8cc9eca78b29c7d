r"""A linear probe: the whole λ path on a dataset, selected on validation.

  python -m experiments.probe --dataset=npz:feats.npz \
      --Cs=logspace:1e-6:1e2:45 --workdir=runs/probe
  python -m experiments.probe --flagfile=experiments/flags/probe_mnist1d.flags \
      --dataset=npz:feats.npz --workdir=runs/probe
  python -m experiments.predict --workdir=runs/probe --input=npz:feats.npz \
      --output=runs/probe/predictions.csv

  # killed? the same command again, plus --resume (finished λ are kept)
  python -m experiments.probe --flagfile=... --workdir=runs/probe --resume

  # rows sharded over 2 hosts (or 2 processes on one): the same command on
  # each, plus its own --process_id; process 0 writes --workdir
  python -m experiments.probe --dataset=npz:feats.npz --Cs=... \
      --workdir=runs/probe --num_processes=2 --process_id=<0|1> \
      --coordinator_address=HOST0:1234

Solves (1/N) Σ L_i + λ ΣW² for every λ of the grid with
``linear_jax.path.lambda_path``, selects the λ with the best validation
accuracy, optionally refits it on train + validation (--refit), and evaluates
the final model once on test. The grid is --reg_strengths (λ) or --Cs
(scikit-learn's LogisticRegression C: λ = 1/(2·C·N), or 1/(C·N) for two
classes), each a comma list of numbers and ranges (``cli.parse_values``):
logspace:START:STOP:NUM, linspace:START:STOP:NUM.

Writes results.csv, results.md, summary.json, accuracy.png, checkpoint.npz
(read by ``experiments.predict``) and probe_checkpoint.npz to --workdir (see
linear_jax/probe.py; process 0 only), and prints the selected λ with its
accuracies and a sha256 of every result, the same on every process. Every setting is a field of
``linear_jax.probe.ProbeConfig``; its flags, help texts and checks come from
there.
"""

from __future__ import annotations

import sys

from absl import flags

from experiments import cli
from linear_jax.probe import ProbeConfig

cli.define_flags(ProbeConfig, exclude=("command",))
flags.adopt_module_key_flags(cli)  # --help lists the generated flags

FLAGS = flags.FLAGS


def run_config() -> ProbeConfig:
  """The flags as a validated ``ProbeConfig`` (no JAX work)."""
  return cli.config_from_flags(
    ProbeConfig,
    command="python -m experiments.probe " + " ".join(sys.argv[1:]),
  ).validate()


def main(argv):
  del argv
  config = run_config()
  config.initialize()  # jax.distributed, before any other JAX work
  from linear_jax import probe  # pylint: disable=g-import-not-at-top

  summary = probe.run(config)
  c = summary["best_C"]
  refit = " (refit on train + validation)" if summary["refit"] else ""
  print(
    f"selected λ={summary['best_reg_strength']:.4g}"
    f"{'' if c is None else f' (C={c:.4g})'}  val acc "
    f"{summary['val_accuracy']:.4f}  test acc "
    f"{summary['test_accuracy']:.4f}{refit}  "
    f"{summary['seconds']:.2f} s -> {config.workdir}"
  )
  print(
    f"probe: {summary['num_processes']} process(es); results sha256 "
    f"{summary['results_sha256']}"
  )


if __name__ == "__main__":
  cli.start(main)
