"""benchmarks/probe.py at small shapes: its modes run, and what they report
is computed from what they measured.
"""

import json

import numpy as np
import pytest
from conftest import run_binary

from linear_jax import row_blocks


def run_probe_benchmark(tmp_path, *flags):
  proc = run_binary("benchmarks.probe", *flags, f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  (out,) = tmp_path.glob("probe_*.json")
  return proc, json.loads(out.read_text())


def test_evaluation_mode_reports_its_rate_against_the_ceiling(tmp_path):
  n, d, c = 3000, 24, 7
  proc, got = run_probe_benchmark(
    tmp_path,
    "--mode=evaluation",
    f"--num_train={n}",
    f"--num_features={d}",
    f"--num_classes={c}",
    "--repeats=3",
  )
  assert got["storage"] == "float32"
  assert got["block_rows"] == row_blocks.block_rows(n, d, c)
  seconds = got["seconds_per_evaluation"]
  assert 0 < seconds < 10
  np.testing.assert_allclose(
    got["evaluation_gflops"], 4 * n * d * c / seconds / 1e9
  )
  ceiling = max(got["matmul_gflops_before"], got["matmul_gflops_after"])
  np.testing.assert_allclose(
    got["fraction_of_ceiling"], got["evaluation_gflops"] / ceiling
  )
  assert f"{got['fraction_of_ceiling']:.0%} of the higher" in proc.stdout


@pytest.mark.slow
def test_path_mode_agrees_with_sklearn_at_a_small_shape(tmp_path):
  _, got = run_probe_benchmark(
    tmp_path,
    "--mode=path",
    "--num_train=400",
    "--num_val=200",
    "--num_test=200",
    "--num_features=16",
    "--num_classes=5",
    "--num_c=3",
    "--c_min=0.01",
    "--c_max=1",
    "--rank=8",
  )
  assert len(got["rows"]) == 3
  for row in got["rows"]:
    gap = (row["ours_objective"] - row["sklearn_objective"]) / row[
      "sklearn_objective"
    ]
    assert gap < 1e-4, row
  assert got["ours_best"] == got["sklearn_best"]
