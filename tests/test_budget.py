"""linear_jax.budget: one memory budget, derived from the machine, with a
flag and an environment variable to override it, and estimates that bound
the real peak of loading data.
"""

import io as std_io
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import slow_except

from linear_jax import budget, data
from linear_jax.checks import LinearJaxError
from linear_jax.data import preprocessing

GIB = 2**30


@pytest.mark.parametrize(
  "text,size",
  [
    ("4GiB", 4 * GIB),
    ("4G", 4 * GIB),
    ("4gib", 4 * GIB),
    ("2.5GB", 2_500_000_000),
    ("512MiB", 512 * 2**20),
    ("800M", 800 * 2**20),
    ("1e9", 10**9),
    ("4294967296", 4 * GIB),
    (123456, 123456),
  ],
)
def test_parse_size(text, size):
  assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1GiB", "4Gx", "lots", "inf", "Gi"])
def test_bad_sizes_are_one_line(text):
  with pytest.raises(LinearJaxError) as e:
    budget.parse_size(text)
  assert "--memory_budget" in str(e.value) and "\n" not in str(e.value)


def test_default_follows_the_available_memory(monkeypatch):
  monkeypatch.delenv(budget.ENV, raising=False)
  for available in (3 * GIB, 64 * GIB):
    monkeypatch.setattr(budget, "available_bytes", lambda a=available: a)
    assert budget.memory_budget() == int(budget.AVAILABLE_FRACTION * available)
    assert "available" in budget.describe()
  monkeypatch.setattr(budget, "available_bytes", lambda: None)
  assert budget.memory_budget() == budget.FALLBACK_BYTES


def test_available_bytes_reads_the_machine():
  available = budget.available_bytes()
  assert available is not None and 2**26 < available < 2**50


def test_override_order_flag_then_environment_then_machine(monkeypatch):
  monkeypatch.setattr(budget, "available_bytes", lambda: 64 * GIB)
  monkeypatch.setenv(budget.ENV, "3GiB")
  assert budget.memory_budget() == 3 * GIB
  assert budget.describe() == f"{budget.ENV}=3GiB"
  with budget.limited("1GiB"):
    assert budget.memory_budget() == GIB
    with budget.limited(None):  # None leaves the budget as it is
      assert budget.memory_budget() == GIB
    assert budget.memory_budget("2GiB") == 2 * GIB
  assert budget.memory_budget() == 3 * GIB
  monkeypatch.setenv(budget.ENV, "many")
  with pytest.raises(LinearJaxError, match=budget.ENV):
    budget.memory_budget()


def promised_npz(path, shape, dtype=np.float64):
  """An .npz whose member ``x`` promises ``shape`` in its header (and holds
  no data): enough for the size check, which reads headers only.
  """

  def header(shape, dtype):
    out = std_io.BytesIO()
    np.lib.format.write_array_header_1_0(
      out,
      {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape},
    )
    return out.getvalue()

  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("x.npy", header(shape, dtype))
    archive.writestr("y.npy", header(shape[:1], np.int8))
  return path


def test_npz_budget_follows_the_machine_not_a_constant(tmp_path, monkeypatch):
  """A 2.29 GiB npz (plus its 1.14 GiB float32 copy) loads on a machine with
  the memory, and is refused on a small one, naming the sizes.
  """
  monkeypatch.delenv(budget.ENV, raising=False)
  path = promised_npz(tmp_path / "big.npz", (300_000, 1024))
  monkeypatch.setattr(budget, "available_bytes", lambda: 23 * GIB)
  with pytest.raises(LinearJaxError) as e:  # passes the budget, then fails
    data.load_dataset(f"npz:{path}")
  assert "is not a NumPy .npz file" in str(e.value)
  monkeypatch.setattr(budget, "available_bytes", lambda: 4 * GIB)
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset(f"npz:{path}")
  message = str(e.value)
  assert "needs ~3.43 GiB, over the 2.80 GiB memory budget" in message
  assert "x (300000, 1024) float64" in message
  assert "70% of 4.00 GiB available" in message
  assert "--memory_budget" in message and "\n" not in message


@pytest.mark.slow
def test_flag_and_environment_reach_the_binary(tmp_path, run_module):
  rng = np.random.default_rng(0)
  path = tmp_path / "small.npz"
  np.savez(path, x=rng.normal(size=(400, 50)), y=rng.integers(0, 2, 400))
  for flag, env in (
    ("--memory_budget=100KiB", None),
    (None, {budget.ENV: "100KiB"}),
  ):
    proc = run_module(
      "experiments.train",
      f"--dataset=npz:{path}",
      f"--workdir={tmp_path / 'w'}",
      "--epochs=1",
      *([flag] if flag else []),
      env=env,
      timeout=120,
    )
    errors = [
      line for line in proc.stderr.splitlines() if line.startswith("error:")
    ]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-1500:]
    assert "over the 102400 bytes memory budget" in errors[0]
    assert not (tmp_path / "w" / "checkpoint.npz").exists()


def svmlight_file(path, n, d, density, seed=0):
  rng = np.random.default_rng(seed)
  lines = []
  for _ in range(n):
    cols = np.flatnonzero(rng.random(d) < density)
    values = rng.normal(size=len(cols))
    label = int(rng.integers(0, 3))
    features = " ".join(
      f"{c + 1}:{v:.3f}" for c, v in zip(cols, values, strict=True)
    )
    lines.append(f"{label} {features}")
  lines.append(f"0 {d}:1.0")  # the last column exists
  path.write_text("\n".join(lines) + "\n")
  return path


@pytest.mark.parametrize("kind", slow_except(["svmlight", "npz"], "npz"))
def test_the_estimate_bounds_the_real_peak(kind, tmp_path, monkeypatch):
  """The peak traced by tracemalloc (numpy's and Python's allocations) while
  loading stays within the estimate the budget is compared with, plus the
  fixed temporaries of one chunk of rows.
  """
  n, d = 40_000, 200

  def write(name, n):
    if kind == "svmlight":
      # Dense enough (15 %, above should_densify's 1/8) that the rows are
      # densified; no denser, as each stored value costs parsing time.
      return svmlight_file(tmp_path / f"{name}.txt", n, d, 0.15)
    path = tmp_path / f"{name}.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(n, d)), y=rng.integers(0, 3, n))
    return path

  path = write("a", n)
  estimates = []
  check = budget.check_fits
  monkeypatch.setattr(
    budget,
    "check_fits",
    lambda need, *a, **k: (estimates.append(need), check(need, *a, **k)),
  )
  # Imports (sklearn's parser) first, on a small file of the same kind.
  data.load_dataset(f"{kind}:{write('small', 60)}")
  estimates.clear()
  tracemalloc.start()
  try:
    ds = data.load_dataset(f"{kind}:{path}")
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert ds.x_train.dtype == np.float32
  dense = (n + (kind == "svmlight")) * d * 4
  assert len(estimates) == 1 and estimates[0] >= 2 * dense
  slack = 2 * preprocessing.CHUNK_BYTES
  assert peak <= 1.05 * estimates[0] + slack, (
    peak / dense,
    estimates[0] / dense,
  )
