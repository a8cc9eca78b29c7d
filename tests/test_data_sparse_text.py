"""Synthetic sparse text: shapes, row statistics, seeding, class signal."""

import dataclasses

import numpy as np
import pytest

from linear_jax import LinearJaxError
from linear_jax.data import distributions

SMALL = distributions.sparse_text(
  "news20", num_features=3000, num_classes=4, topic_words=200
)


def test_presets_have_the_libsvm_shapes():
  shapes = {
    name: (s.num_features, s.num_classes, s.train_size, s.test_size)
    for name, s in distributions.SPARSE_TEXT_PRESETS.items()
  }
  assert shapes["rcv1"] == (47_236, 2, 20_242, 677_399)
  assert shapes["news20"] == (62_061, 20, 15_935, 3_993)
  assert shapes["url"][:3] == (3_231_961, 2, 2_000_000)


def test_rows_are_canonical_unit_norm_tfidf():
  x, y = SMALL.sample(500, seed=3)
  assert x.shape == (500, 3000) and x.dtype == np.float32
  assert x.indices.dtype == np.int32 and x.indptr.dtype == np.int32
  per_row = np.diff(x.indptr)
  assert per_row.min() >= 50 and per_row.max() <= 100
  assert 70 <= per_row.mean() <= 80  # uniform in [50, 100]
  # Sorted, unique indices per row (what svmlight files require).
  for i in range(0, 500, 50):
    cols = x.indices[x.indptr[i] : x.indptr[i + 1]]
    assert np.all(np.diff(cols) > 0)
  norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
  np.testing.assert_allclose(norms, 1.0, rtol=1e-6)
  assert x.data.min() > 0
  assert set(np.unique(y)) == {0, 1, 2, 3}
  # Zipf: the most frequent column is in far more rows than the median one.
  df = np.bincount(x.indices, minlength=3000)
  assert df.max() > 20 * max(np.median(df), 1)


def test_same_seed_same_rows_other_seed_other_rows():
  a, ya = SMALL.sample(200, seed=1)
  b, yb = SMALL.sample(200, seed=1)
  c, _ = SMALL.sample(200, seed=2)
  assert (a != b).nnz == 0 and np.array_equal(ya, yb)
  assert (a != c).nnz > 0


def test_classes_are_linearly_separable_up_to_confusion():
  """A linear classifier learns the topics: far above chance (25 %), and
  more confusion lowers its accuracy.
  """
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top

  def accuracy(spec):
    x, y, xt, yt = spec.splits(0, train_size=1500, test_size=500)
    return LinearSVC().fit(x, y).score(xt, yt)

  clean = accuracy(dataclasses.replace(SMALL, max_confusion=0.0))
  confused = accuracy(dataclasses.replace(SMALL, max_confusion=0.7))
  assert clean > 0.9
  assert 0.3 < confused < clean - 0.05


def test_bad_specs_fail_in_one_line():
  with pytest.raises(LinearJaxError, match="too small"):
    distributions.sparse_text("rcv1", num_features=500)
  with pytest.raises(LinearJaxError, match="nonzeros"):
    distributions.sparse_text("rcv1", nonzeros=(10, 5))
  with pytest.raises(LinearJaxError, match="unknown sparse text preset"):
    distributions.sparse_text("rcv2")
