"""Hostile flag values: every numeric and list flag of the train and sweep
binaries, fed seeded random bad values, ends with exit 0, or exit 1 and one
``error:`` line; never a traceback.

Each binary runs its cases in one driver process (flags re-parsed per case),
the same parsing and ``main`` that ``python -m experiments.<binary>`` runs,
so that many cases cost one start-up.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import binary_env

REPO = Path(__file__).resolve().parents[1]

BAD_NUMBERS = [
  "-1",
  "-0.5",
  "nan",
  "inf",
  "-inf",
  "1e400",
  "abc",
  "",
  "0x",
  "1,2",
  "--",
  "-99999999999999999999",
  "0",
]
BAD_LISTS = [
  "",
  ",",
  "nan",
  "1,,2",
  "-1",
  "abc",
  "inf",
  "1e400",
  "logspace:1:0:0",
  "logspace:1e-3:1:-5",
  "linspace:1:2",
  "logspace:0:1:3",
  "svm,",
  "0,-0.1",
  "99999999999999999999999",
]
LIST_FLAGS = {
  "losses",
  "regs",
  "reg_strengths",
  "learning_rates",
  "margins",
  "seeds",
}
# Flags that are out of scope here: multi-process plumbing waits for peers.
SKIP = {"num_processes", "process_id", "coordinator_address"}

DRIVER = textwrap.dedent(r"""
    import contextlib, io, json, sys, traceback
    from absl import flags
    import experiments.{binary} as binary
    from experiments import cli

    FLAGS = flags.FLAGS
    cases = json.loads(sys.argv[1])
    if cases == "list":
      out = []
      for module, fs in FLAGS.flags_by_module_dict().items():
        if module.split(".")[0] in ("experiments", "__main__"):
          out += [(f.name, f.flag_type()) for f in fs]
      print(json.dumps(sorted(set(out))))
      sys.exit(0)
    results = []
    for args in cases:
      err = io.StringIO()
      code = 0
      with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
          FLAGS.unparse_flags()
          argv = cli.parse_flags(["prog", *args])
          cli.run_main(binary.main)(argv)
        except SystemExit as e:
          code = e.code
        except BaseException:
          code = "traceback"
          err.write(traceback.format_exc())
      results.append([args, code, err.getvalue()])
    print(json.dumps(results))
""")


def drive(binary, cases, timeout=600):
  env = binary_env()
  proc = subprocess.run(
    [
      sys.executable,
      "-c",
      DRIVER.replace("{binary}", binary),
      json.dumps(cases),
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def fuzz_cases(binary, base, rng, tmp_path, per_flag=2):
  flags = drive(binary, "list")
  cases = []
  for name, kind in flags:
    if name in SKIP:
      continue
    if name in LIST_FLAGS or kind in ("list", "multi_string"):
      pool = BAD_LISTS
    elif kind in ("int", "float"):
      pool = BAD_NUMBERS
    else:
      continue
    # Always the classic (-1 / empty), plus random others.
    values = [pool[0] if pool is BAD_NUMBERS else ""] + list(
      rng.choice(pool[1:], per_flag, replace=False)
    )
    for value in values:
      workdir = tmp_path / f"{binary}-{len(cases)}"
      cases.append([*base, f"--workdir={workdir}", f"--{name}={value}"])
  return flags, cases


@pytest.mark.slow
@pytest.mark.parametrize(
  "binary,base",
  [
    ("train", ["--dataset=blobs", "--epochs=1", "--plots=false"]),
    (
      "sweep",
      [
        "--dataset=blobs",
        "--epochs=1",
        "--losses=svm",
        "--reg_strengths=1e-3",
        "--learning_rates=0.1",
        "--plots=false",
      ],
    ),
  ],
)
def test_bad_flag_values_end_in_one_line_or_success(binary, base, tmp_path):
  rng = np.random.default_rng(12)
  flags, cases = fuzz_cases(binary, base, rng, tmp_path)
  numeric = [n for n, k in flags if k in ("int", "float") and n not in SKIP]
  assert len(numeric) >= 5, flags  # the flags were found
  results = drive(binary, cases)
  assert len(results) == len(cases)
  outcomes = {"ok": 0, "error": 0}
  for args, code, err in results:
    where = f"{binary} {args[-1]}"
    assert code in (0, 1, None), f"{where}: {code}\n{err[-2000:]}"
    assert "Traceback" not in err, f"{where}:\n{err[-2000:]}"
    if code == 1:
      errors = [line for line in err.splitlines() if line.startswith("error:")]
      assert len(errors) == 1, f"{where}:\n{err[-2000:]}"
      outcomes["error"] += 1
    else:
      outcomes["ok"] += 1
  assert outcomes["error"] >= len(cases) // 2, outcomes
