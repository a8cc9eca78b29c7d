"""experiments/cli.py: value lists, flags generated from a config dataclass."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from conftest import REPO, binary_env, free_port, slow_except

from experiments import cli
from linear_jax import checks
from linear_jax.checks import LinearJaxError, option


def test_parse_values_lists_and_ranges():
  assert cli.parse_values("1e-3, 1e-2", "x") == (1e-3, 1e-2)
  np.testing.assert_allclose(
    cli.parse_values("logspace:1e-4:1e-1:4", "x"),
    [1e-4, 1e-3, 1e-2, 1e-1],
    rtol=1e-12,
  )
  np.testing.assert_allclose(
    cli.parse_values("0,logspace:1e-2:1:3", "x"), [0, 1e-2, 1e-1, 1], rtol=1e-12
  )
  assert cli.parse_values("linspace:0:1:3", "x") == (0.0, 0.5, 1.0)
  assert cli.parse_values("logspace:1e-3:1e-3:1", "x") == (1e-3,)
  assert cli.parse_values("1,1.0,2", "x") == (1.0, 2.0)  # duplicates


@pytest.mark.parametrize(
  "text,words",
  [
    ("logspace:1e-4:1e-1", "bad range"),
    ("logspace:0:1:3", "START and STOP > 0"),
    ("logspace:1e-4:1e-1:0", "NUM must be an integer ≥ 1"),
    ("logspace:1e-4:1e-1:x", "NUM must be an integer ≥ 1"),
    ("geomspace:1:2:3", "bad range"),
    ("1e-3,abc", "'abc' is not a number"),
    ("nan", "not a finite number"),
  ],
)
def test_parse_values_errors_name_the_flag(text, words):
  with pytest.raises(LinearJaxError, match=words) as info:
    cli.parse_values(text, "learning_rates")
  assert "--learning_rates" in str(info.value)
  assert "\n" not in str(info.value)


def test_parse_ints():
  assert cli.parse_ints("0, 3,3", "seeds") == (0, 3)
  with pytest.raises(LinearJaxError, match="--seeds"):
    cli.parse_ints("0,a", "seeds")


@dataclasses.dataclass
class Toy:
  name: str = option("a", "a name", choices=("a", "b"))
  rate: float = option(0.5, "a rate", rule=checks.UNIT_INTERVAL)
  count: int | None = option(None, "a count", rule=checks.AT_LEAST_ONE)
  values: tuple[float, ...] = option(
    (1.0, 2.0), "values", rule=checks.NONNEGATIVE
  )
  on: bool = option(True, "a switch")


def test_flags_are_generated_from_the_fields():
  values = flags.FlagValues()
  cli.define_flags(Toy, flag_values=values)
  values(
    [
      "prog",
      "--name=b",
      "--rate=0.25",
      "--count=3",
      "--values=0,logspace:1e-2:1:3",
      "--noon",
    ]
  )
  toy = cli.config_from_flags(Toy, flag_values=values)
  assert values["rate"].help == "a rate (in [0, 1])"
  assert (toy.name, toy.rate, toy.count, toy.on) == ("b", 0.25, 3, False)
  np.testing.assert_allclose(toy.values, [0, 1e-2, 1e-1, 1], rtol=1e-12)


@pytest.mark.parametrize(
  "change,words",
  [
    (dict(rate=1.5), "rate must be in [0, 1], got 1.5"),
    (dict(count=0), "count must be ≥ 1, got 0"),
    (dict(values=(1.0, -2.0)), "values must be ≥ 0"),
    (dict(name="c"), "unknown name 'c'"),
  ],
)
def test_check_options_one_line(change, words):
  with pytest.raises(LinearJaxError) as e:
    checks.check_options(Toy(**change))
  assert words in str(e.value) and "\n" not in str(e.value)
  checks.check_options(Toy())


FLAGFILE_BINARY = {
  "cifar10_softmax": "train",
  "cifar10_svm": "train",
  "cifar10_sweep": "sweep",
  "digits_sweep": "sweep",
  "probe_sweep": "sweep",
  "probe_mnist1d": "probe",
  "decomposition_cifar10": "error_decomposition",
  "decomposition_synthetic": "error_decomposition",
}


@pytest.mark.parametrize(
  "binary", slow_except(sorted(set(FLAGFILE_BINARY.values())))
)
def test_every_flagfile_parses_with_its_binary(binary):
  """Each flagfile's flags exist in its binary and take its values."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from pathlib import Path  # pylint: disable=g-import-not-at-top

  repo = Path(__file__).resolve().parents[1]
  found = sorted(p.stem for p in (repo / "experiments/flags").glob("*.flags"))
  assert found == sorted(FLAGFILE_BINARY), "map each flagfile to its binary"
  names = [n for n, b in FLAGFILE_BINARY.items() if b == binary]
  code = (
    f"import experiments.{binary}\nfrom absl import flags\n"
    f"for name in {names!r}:\n"
    "  flags.FLAGS.unparse_flags()\n"
    "  flags.FLAGS(['prog', f'--flagfile=experiments/flags/{name}.flags', '--workdir=unused'])\n"
    f"print('parsed', {len(names)})"
  )
  proc = subprocess.run(
    [sys.executable, "-c", code],
    cwd=repo,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"parsed {len(names)}" in proc.stdout


def test_failing_paths_and_allocations_are_one_line(capsys):
  def main_os(argv):
    open("/nonexistent-dir/x", "w")  # noqa: SIM115 (the open must fail)

  def main_memory(argv):
    raise MemoryError

  for main, words in (
    (main_os, "No such file or directory: /nonexistent-dir/x"),
    (main_memory, "out of memory"),
  ):
    with pytest.raises(SystemExit) as e:
      cli.run_main(main)(["prog"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_other_errors_propagate_in_one_process_and_end_a_distributed_one(
  capsys, monkeypatch
):
  """A process of a jax.distributed run leaves at once, in one line, with
  exit 1 (not through JAX's shutdown barrier); one process re-raises.
  """

  def main(argv):
    raise ValueError("Gloo AllGather failed: Connection closed by peer\nmore")

  with pytest.raises(ValueError, match="Gloo AllGather"):
    cli.run_main(main)(["prog"])
  monkeypatch.setattr(cli, "_distributed", lambda: True)

  def exit_now(code):
    raise SystemExit(f"os._exit({code})")

  monkeypatch.setattr(cli.os, "_exit", exit_now)
  with pytest.raises(SystemExit, match=r"os._exit\(1\)"):
    cli.run_main(main)(["prog"])
  err = capsys.readouterr().err.strip().splitlines()
  assert err[0].startswith("Traceback")  # it may be a bug
  assert err[-1] == (
    "error: ValueError: Gloo AllGather failed: Connection closed by peer; "
    "this process stops, as another process of the run may have (see its "
    "output)"
  )

  def bad_input(argv):
    raise LinearJaxError("x_train has NaN")

  with pytest.raises(SystemExit, match=r"os._exit\(1\)"):
    cli.run_main(bad_input)(["prog"])
  assert capsys.readouterr().err == "error: x_train has NaN\n"


FAILS_ALONE = r"""
import os, sys
from experiments import cli
from linear_jax.checks import LinearJaxError
from linear_jax.sweep import distributed

def main(argv):
  distributed.initialize(sys.argv[2], 2, int(sys.argv[1]))
  from linear_jax import shards
  shards.total([1.0])
  if sys.argv[1] == "1":  # fails alone, between two cross-process sums
    raise LinearJaxError("process 1 alone")
  shards.total([1.0])

cli.run_main(main)(["prog"])
"""


@pytest.mark.slow
def test_a_process_that_fails_alone_ends_the_run_at_once():
  """Measured without the early exits: the failed process waited in JAX's
  shutdown barrier (300 s) and its peer in its next sum, then both aborted;
  a peer that died left the survivor's exit waiting ~100 s.
  """
  address = f"localhost:{free_port()}"
  env = binary_env(PYTHONPATH=str(REPO))
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", FAILS_ALONE, str(i), address],
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  try:
    errs = [p.communicate(timeout=60)[1] for p in procs]
  finally:
    for p in procs:
      p.kill()
  assert [p.returncode for p in procs] == [1, 1], errs
  lines = [
    [x for x in err.splitlines() if x.startswith("error:")] for err in errs
  ]
  assert lines[1] == ["error: process 1 alone"], errs[1]
  assert len(lines[0]) == 1 and "another process of the run" in lines[0][0]
  assert all("Check failure" not in err for err in errs)
