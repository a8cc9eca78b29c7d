r"""Sweep losses × regularizers × λ × learning rates in one compiled program.

  python -m experiments.sweep --dataset=digits --losses=svm,softmax \
      --reg_strengths=logspace:1e-5:1e-1:5 --learning_rates=logspace:1e-3:1:4 \
      --epochs=10 --workdir=runs/sweep_digits
  python -m experiments.sweep --flagfile=experiments/flags/cifar10_sweep.flags

  # two hosts (or two processes on one): the same command on each, plus
  #   --num_processes=2 --process_id=<0|1> --coordinator_address=HOST0:1234

Writes results.csv, results.md, sweep_summary.json, history.csv (metrics per
configuration and epoch), heatmap_<loss>.png (validation accuracy over
learning rate × λ, each cell the best over Δ and seeds;
heatmap_<loss>_<reg>.png when --regs has several) and sweep_checkpoint.npz to
--workdir (see linear_jax/sweep/experiment.py), and prints the best
configuration of each loss (selected on validation, evaluated once on test)
and a sha256 of every result, the same on every process.

  # killed? the same command again, plus --resume (finished chunks are kept)
  python -m experiments.sweep --flagfile=... --workdir=runs/s --resume

Every setting is a field of ``linear_jax.sweep.experiment.SweepRunConfig``;
its flags, help texts and checks come from there. Value lists
(--reg_strengths, --learning_rates, --margins) are comma lists of numbers and
ranges (``cli.parse_values``): logspace:START:STOP:NUM (NUM log-spaced
values, both ends included, START, STOP > 0), linspace:START:STOP:NUM; e.g.
0,logspace:1e-4:1e-1:4.
"""

from __future__ import annotations

import sys

from absl import flags, logging

from experiments import cli
from linear_jax.sweep.experiment import SweepRunConfig

cli.define_flags(SweepRunConfig, exclude=("command",))
flags.adopt_module_key_flags(cli)  # --help lists the generated flags


def run_config() -> SweepRunConfig:
  """The flags as a validated ``SweepRunConfig`` (pure Python, no JAX work)."""
  return cli.config_from_flags(
    SweepRunConfig,
    command="python -m experiments.sweep " + " ".join(sys.argv[1:]),
  ).validate()


def main(argv):
  del argv
  config = run_config()
  config.initialize()  # jax.distributed, before any other JAX work
  from linear_jax.sweep import experiment  # pylint: disable=g-import-not-at-top

  summary = experiment.run(config)
  logging.info(
    "sweep: train %.2f s, compile %.2f s, %d configurations",
    summary["train_seconds"],
    summary["compile_seconds"],
    summary["num_configs"],
  )
  for loss, best in summary["best"].items():
    margin = "" if best["margin"] is None else f", Δ={best['margin']:g}"
    print(
      f"best {loss}: val {best['val_accuracy']:.4f}  test "
      f"{best['test_accuracy']:.4f}  ({best['reg']}, "
      f"λ={best['reg_strength']:g}, lr={best['learning_rate']:g}{margin}, "
      f"seed {best['seed']})"
    )
  for loss in summary["all_diverged"]:
    print(f"best {loss}: none, every configuration diverged")
  print(
    f"sweep: {summary['num_configs']} configurations, "
    f"{summary['num_diverged']} diverged, on {len(summary['devices'])} "
    f"devices in {summary['num_processes']} processes; results sha256 "
    f"{summary['results_sha256']} -> {config.workdir}"
  )


if __name__ == "__main__":
  cli.start(main)
