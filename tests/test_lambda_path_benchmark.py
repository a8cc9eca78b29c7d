"""benchmarks/lambda_path.py end to end on the embedded digits (small and offline)."""

import json

import pytest
from conftest import run_binary


@pytest.mark.slow
def test_lambda_path_benchmark_agrees_with_sklearn(tmp_path):
  proc = run_binary(
    "benchmarks.lambda_path",
    "--dataset=digits",
    "--max_train=0",
    "--max_test=0",
    "--num_c=4",
    "--c_min=1e-3",
    "--c_max=1",
    "--rank=32",
    f"--out={tmp_path}",
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  (out,) = tmp_path.glob("lambda_path_pixels_*_cpu.json")
  result = json.loads(out.read_text())
  assert len(result["rows"]) == 4
  # The criteria of the benchmark table: objectives within 1e-4 relative,
  # the same C selected, test accuracy within 0.3 points.
  assert result["max_abs_relative_objective_gap"] < 1e-4
  assert result["ours_best"] == result["sklearn_best"]
  assert (
    abs(
      result["ours_best_test_accuracy"] - result["sklearn_best_test_accuracy"]
    )
    <= 0.003
  )
