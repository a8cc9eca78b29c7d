"""Splits and preprocessing: statistics from the training rows only, seeded splits."""

import numpy as np
import pytest

from linear_jax import LinearJaxError, data
from linear_jax.data import PreprocessStats


def indexed_problem(n_train=100, n_test=40, d=5, seed=0):
  """Raw train rows whose feature 0 is the row index; test rows far away (1e6)."""
  rng = np.random.default_rng(seed)
  x_train = rng.normal(size=(n_train, d))
  x_train[:, 0] = np.arange(n_train)
  y_train = rng.integers(0, 3, size=n_train)
  x_test = 1e6 + rng.normal(size=(n_test, d))
  y_test = rng.integers(0, 3, size=n_test)
  return x_train, y_train, x_test, y_test


def train_rows(ds):
  """Indices (into the raw train rows) of ``ds.x_train``, from feature 0."""
  return np.rint(ds.x_train[:, 0] + ds.stats.mean[0]).astype(int)


def test_mean_comes_from_training_rows_only():
  x_train, y_train, x_test, y_test = indexed_problem()
  ds = data.from_arrays(
    x_train, y_train, x_test, y_test, validation_size=20, seed=3
  )
  rows = train_rows(ds)
  assert len(rows) == 80 and len(set(rows)) == 80
  expected = x_train[rows].mean(axis=0, dtype=np.float64).astype(np.float32)
  np.testing.assert_array_equal(ds.stats.mean, expected)
  # The 20 validation rows are exactly the rows missing from train.
  val_rows = np.rint(ds.x_val[:, 0] + ds.stats.mean[0]).astype(int)
  assert sorted(np.concatenate([rows, val_rows])) == list(range(100))
  # With the test rows (1e6) in the mean it would be ~2.9e5, not ~50.
  assert abs(ds.stats.mean[1]) < 1
  # Means in float64: only each value's float32 storage rounding
  # (≤ eps32/2 ≈ 6e-8 relative) is left, on any CPU.
  np.testing.assert_allclose(
    ds.x_test.mean(dtype=np.float64),
    1e6 - ds.stats.mean.mean(dtype=np.float64),
    rtol=1e-6,
  )


def test_own_validation_split_stays_out_of_the_mean():
  x_train, y_train, x_test, y_test = indexed_problem()
  x_val = np.full((10, 5), -1e6)
  ds = data.from_arrays(
    x_train, y_train, x_test, y_test, x_val=x_val, y_val=np.zeros(10, int)
  )
  assert (len(ds.y_train), len(ds.y_val)) == (100, 10)
  np.testing.assert_allclose(ds.stats.mean, x_train.mean(axis=0), rtol=1e-6)
  expected_val = np.broadcast_to(-1e6 - ds.stats.mean, (10, 5))
  np.testing.assert_allclose(ds.x_val, expected_val, rtol=1e-6)


def test_max_train_caps_the_training_rows_used_for_stats():
  x_train, y_train, x_test, y_test = indexed_problem()
  ds = data.from_arrays(
    x_train, y_train, x_test, y_test, validation_size=10, max_train=30, seed=1
  )
  rows = train_rows(ds)
  assert (len(ds.y_train), len(ds.y_val)) == (30, 10)
  np.testing.assert_array_equal(
    ds.stats.mean, x_train[rows].mean(0, dtype=np.float64).astype(np.float32)
  )


def test_split_is_deterministic_under_seed():
  x_train, y_train, x_test, y_test = indexed_problem()
  a, b, c = (
    data.from_arrays(
      x_train, y_train, x_test, y_test, validation_size=25, seed=s
    )
    for s in (7, 7, 8)
  )
  for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert set(train_rows(a)) != set(train_rows(c))
  # The permutation is numpy's default_rng(seed): the documented contract.
  perm = np.random.default_rng(7).permutation(100)
  np.testing.assert_array_equal(train_rows(a), perm[25:])


def test_standardize_gives_zero_mean_unit_variance_on_train():
  rng = np.random.default_rng(0)
  x = rng.normal(
    loc=[3.0, -2.0, 10.0, 0.0], scale=[0.5, 4.0, 20.0, 1.0], size=(500, 4)
  )
  x[:, 3] = 7.0  # a constant feature: σ = 0 is replaced by 1
  ds = data.from_arrays(
    x,
    np.arange(500) % 2,
    x[:50],
    np.arange(50) % 2,
    standardize=True,
    validation_size=100,
  )
  # float64 reductions of the float32 rows: only their storage rounding
  # (eps32 · |x| ≈ 1e-6 for |x| ≤ 10) is left, on any CPU.
  np.testing.assert_allclose(
    ds.x_train.mean(axis=0, dtype=np.float64), 0.0, atol=1e-5
  )
  np.testing.assert_allclose(
    ds.x_train[:, :3].std(axis=0, dtype=np.float64), 1.0, rtol=1e-5
  )
  assert ds.stats.scale[3] == 1.0 and np.all(ds.x_train[:, 3] == 0.0)
  np.testing.assert_allclose(ds.stats.scale[:3], [0.5, 4.0, 20.0], rtol=0.1)


def test_no_mean_subtraction_keeps_raw_values():
  x_train, y_train, x_test, y_test = indexed_problem()
  ds = data.from_arrays(
    x_train, y_train, x_test, y_test, subtract_mean=False, validation_size=0
  )
  assert ds.stats.mean is None and ds.stats.scale is None
  assert ds.x_train.dtype == np.float32
  np.testing.assert_array_equal(np.sort(ds.x_train[:, 0]), np.arange(100))
  np.testing.assert_array_equal(ds.x_test, x_test.astype(np.float32))


def test_bias_column_is_appended_to_every_split():
  x_train, y_train, x_test, y_test = indexed_problem()
  ds = data.from_arrays(x_train, y_train, x_test, y_test, bias_column=True)
  assert ds.num_features == 6 and ds.stats.num_features == 5
  for x in (ds.x_train, ds.x_val, ds.x_test):
    assert x.shape[1] == 6 and np.all(x[:, -1] == 1.0)
  # float64 mean: only the float32 storage of values ≤ ~100 (≈ 1e-5) is left.
  np.testing.assert_allclose(
    ds.x_train[:, :-1].mean(0, dtype=np.float64), 0.0, atol=1e-4
  )


def test_stats_round_trip_through_npz_and_reproduce_x_test(tmp_path):
  rng = np.random.default_rng(1)
  x_train = rng.integers(0, 256, size=(60, 4, 4, 3), dtype=np.uint8)
  x_test = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
  for options in (
    {},
    {"standardize": True, "bias_column": True},
    {"subtract_mean": False},
  ):
    ds = data.from_arrays(
      x_train,
      np.arange(60) % 3,
      x_test,
      np.arange(20) % 3,
      image_shape=(4, 4, 3),
      **options,
    )
    np.savez(tmp_path / "stats.npz", **ds.stats.to_dict())
    with np.load(tmp_path / "stats.npz") as saved:
      stats = PreprocessStats.from_dict(saved)
    assert stats.bias_column == ds.stats.bias_column
    np.testing.assert_array_equal(stats.apply(x_test), ds.x_test)
    assert ds.x_test.shape == (20, 48 + int(stats.bias_column))


def test_apply_rejects_examples_of_another_size():
  stats = data.fit_stats(np.zeros((4, 3)))
  with pytest.raises(LinearJaxError) as e:
    stats.apply(np.zeros((2, 5)))
  assert "fitted on 3" in str(e.value)


def test_fractional_validation_size():
  x_train, y_train, x_test, y_test = indexed_problem()
  ds = data.from_arrays(x_train, y_train, x_test, y_test, validation_size=0.3)
  assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (70, 30, 40)


def test_missing_test_split_is_a_fixed_carve_of_train():
  x_train, y_train, _, _ = indexed_problem()
  a = data.from_arrays(x_train, y_train, seed=0, subtract_mean=False)
  b = data.from_arrays(x_train, y_train, seed=5, subtract_mean=False)
  assert len(a.y_test) == 20 and len(a.y_train) + len(a.y_val) == 80
  np.testing.assert_array_equal(a.x_test, b.x_test)  # test does not move
  held_out = set(a.x_test[:, 0].astype(int))
  assert held_out.isdisjoint(a.x_train[:, 0].astype(int))


def test_mirror_train_appends_flipped_images_and_fits_stats_on_both():
  from linear_jax.data.dataset import RawData, from_raw

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(40, 2, 3, 1), dtype=np.uint8)
  labels = rng.integers(0, 2, size=40)
  raw = RawData(
    {"train": (images, labels), "test": (images[:5], labels[:5])},
    ("a", "b"),
    (2, 3, 1),
  )
  plain = from_raw(raw, name="t", validation_size=10, subtract_mean=False)
  mirrored = from_raw(
    raw, name="t", validation_size=10, subtract_mean=False, mirror_train=True
  )
  assert mirrored.x_train.shape == (60, 6)
  np.testing.assert_array_equal(mirrored.x_train[:30], plain.x_train)
  flipped = plain.x_train.reshape(30, 2, 3, 1)[:, :, ::-1].reshape(30, 6)
  np.testing.assert_array_equal(mirrored.x_train[30:], flipped)
  np.testing.assert_array_equal(mirrored.y_train, np.tile(plain.y_train, 2))
  np.testing.assert_array_equal(mirrored.x_val, plain.x_val)
  centred = from_raw(raw, name="t", validation_size=10, mirror_train=True)
  mean = centred.stats.mean.reshape(2, 3, 1)
  np.testing.assert_allclose(mean, mean[:, ::-1], rtol=1e-6)  # symmetric


def test_apply_refuses_values_that_overflow_after_the_cast():
  """Both x and μ fit float32, x − μ does not: refused, not passed as inf."""
  stats = PreprocessStats(num_features=2, mean=np.array([0.0, -3e38], "f4"))
  x = np.array([[1.0, 1.0], [2.0, 3e38]], np.float32)
  with pytest.raises(LinearJaxError) as e:
    stats.apply(x)
  assert "feature 1 of example 1" in str(e.value) and "inf" in str(e.value)
  want = x[:1] - stats.mean  # float32, as apply computes it
  np.testing.assert_array_equal(stats.apply(x[:1]), want)
