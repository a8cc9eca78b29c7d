"""Synthetic sparse text: TF-IDF rows with the shapes of LIBSVM's text sets.

The real rcv1, news20 and url sets cannot be downloaded here; this generator
draws documents with their shapes and statistics instead. It is synthetic:
accuracies measured on it are not those of the real sets, only comparable
between methods run on the same draw.

The generative model (``SparseText.sample``):

1. A vocabulary of V words whose base frequencies follow Zipf's law,
   q_r ∝ 1 / (r + 1)^a over frequency ranks r (word ids are a fixed random
   permutation of the ranks, so ids carry no frequency order).
2. Each class owns ``topics_per_class`` topics; a topic is a list of
   ``topic_words`` words drawn from below the ``stop_words`` most frequent
   ones, used with Zipf weights of their own. Class signal lives in these
   topic words.
3. A document of class c draws its token stream i.i.d.: with probability
   ``topic_fraction`` from a topic (of c with probability 1 − m, else of a
   random other class c'; m ~ Uniform(0, ``max_confusion``) per document,
   the topic itself from a per-document Dirichlet(1) mixture over that
   class's topics), otherwise from the Zipf background.
4. The document keeps the first ``nnz`` distinct words of its stream, nnz
   uniform in ``nonzeros`` (fewer if the stream of ``3 · max nnz`` tokens
   runs out), with term counts tf.
5. Values are TF-IDF-like, (1 + log tf) · idf_w with idf_w = log(1 / p_w),
   p_w the model's marginal token probability of word w; each row is then
   L2-normalized (unit Euclidean norm), float32.

Rows come out as ``scipy.sparse.csr_matrix`` (sorted, unique indices; int32
indices and row pointers where they fit, else int64). Generation runs in row
chunks, writing into arrays sized by the drawn non-zero counts, so its peak
memory is about the CSR bytes plus one chunk.

``PRESETS`` hold the shapes of the LIBSVM sets (train / test rows, features,
classes); ``max_confusion`` is set so that LIBLINEAR's accuracy on a draw
lies near its published accuracy on the real set (rcv1 ≈ 97 %, news20
≈ 85 %).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from linear_jax import checks

# Rows generated per chunk (bounds the temporary memory: chunk · 3 · max nnz
# tokens of 8 bytes, ~10 MB).
CHUNK_ROWS = 4096
# Tokens drawn per document, as a multiple of its largest non-zero count.
STREAM_FACTOR = 3
INT32_MAX = np.iinfo(np.int32).max


@dataclasses.dataclass(frozen=True)
class SparseText:
  """A synthetic sparse-text distribution (module docstring).

  Attributes:
    name: e.g. ``"rcv1"``.
    num_features: V, the vocabulary size (columns of every sample).
    num_classes: K.
    train_size: rows of the preset's training split.
    test_size: rows of the preset's test split.
    nonzeros: ``(low, high)``: each row has a uniform integer number of
      non-zeros in [low, high].
    zipf_exponent: a of the Zipf base frequencies.
    stop_words: the most frequent words, never topic words.
    topics_per_class: topics each class owns.
    topic_words: words per topic.
    topic_fraction: share of a document's tokens drawn from topics.
    max_confusion: m ≤ this share of a document's topic tokens come from
      another class's topics (sets the Bayes error).
    seed: seeds the vocabulary and topics (the model); samples take their
      own seed.
  """

  name: str
  num_features: int
  num_classes: int
  train_size: int
  test_size: int
  nonzeros: tuple = (50, 100)
  zipf_exponent: float = 1.1
  stop_words: int = 200
  topics_per_class: int = 4
  topic_words: int = 800
  topic_fraction: float = 0.3
  max_confusion: float = 0.6
  seed: int = 0

  def __post_init__(self):
    low, high = self.nonzeros
    if not 1 <= low <= high:
      raise checks.LinearJaxError(
        f"nonzeros must be (low, high) with 1 ≤ low ≤ high, got {self.nonzeros}"
      )
    if self.num_classes < 2:
      raise checks.LinearJaxError(
        f"num_classes must be ≥ 2, got {self.num_classes}"
      )
    pool = self.num_features - self.stop_words
    if pool < self.topic_words or high > self.num_features:
      raise checks.LinearJaxError(
        f"num_features {self.num_features} is too small for "
        f"{self.stop_words} stop words, topics of {self.topic_words} words "
        f"and rows of {high} non-zeros; use more features"
      )
    if not 0.0 <= self.topic_fraction <= 1.0 or not (
      0.0 <= self.max_confusion <= 1.0
    ):
      raise checks.LinearJaxError(
        "topic_fraction and max_confusion must lie in [0, 1]"
      )

  def _model(self):
    """Vocabulary permutation, topic word lists, CDFs and idf (seeded)."""
    rng = np.random.default_rng([self.seed, 1])
    v = self.num_features
    ranks = np.arange(v, dtype=np.float64)
    base = (ranks + 1.0) ** -self.zipf_exponent
    base /= base.sum()
    word_of_rank = rng.permutation(v)
    num_topics = self.num_classes * self.topics_per_class
    pool = np.arange(self.stop_words, v)
    topic_ranks = np.stack(
      [
        rng.choice(pool, self.topic_words, replace=False)
        for _ in range(num_topics)
      ]
    )
    topics = word_of_rank[topic_ranks]  # [T, S] word ids
    inner = (np.arange(self.topic_words) + 1.0) ** -self.zipf_exponent
    inner /= inner.sum()
    # Marginal token probability of each word (classes equally likely).
    marginal = np.zeros(v)
    marginal[word_of_rank] = (1.0 - self.topic_fraction) * base
    np.add.at(
      marginal,
      topics.reshape(-1),
      np.tile(inner, num_topics) * self.topic_fraction / num_topics,
    )
    idf = np.log(1.0 / np.maximum(marginal, np.finfo(np.float64).tiny))
    return {
      "base_cdf": np.cumsum(base),
      "word_of_rank": word_of_rank,
      "topics": topics,
      "inner_cdf": np.cumsum(inner),
      "idf": idf.astype(np.float32),
    }

  def sample(self, n: int, seed=0):
    """``n`` documents: ``(x, y)``.

    Args:
      n: rows, ≥ 0.
      seed: an int or sequence of ints; the same seed gives the same rows.

    Returns:
      ``x``: ``scipy.sparse.csr_matrix`` float32 ``[n, V]``, rows of unit
      L2 norm; ``y``: int32 ``[n]`` labels in [0, K), uniform.
    """
    import scipy.sparse  # pylint: disable=g-import-not-at-top

    if n < 0:
      raise checks.LinearJaxError(f"sample size must be ≥ 0, got {n}")
    model = self._model()
    rng = np.random.default_rng(seed)
    y = rng.integers(0, self.num_classes, size=n).astype(np.int32)
    low, high = self.nonzeros
    target = rng.integers(low, high + 1, size=n)
    upper = int(target.sum())
    index_dtype = (
      np.int32 if max(upper, self.num_features) <= INT32_MAX else np.int64
    )
    data = np.empty(upper, np.float32)
    indices = np.empty(upper, index_dtype)
    indptr = np.zeros(n + 1, index_dtype)
    filled = 0
    for start in range(0, n, CHUNK_ROWS):
      rows = slice(start, min(start + CHUNK_ROWS, n))
      chunk_rows, words, values = self._documents(
        model, y[rows], target[rows], rng
      )
      count = len(words)
      data[filled : filled + count] = values
      indices[filled : filled + count] = words
      counts = np.bincount(chunk_rows, minlength=rows.stop - rows.start)
      indptr[rows.start + 1 : rows.stop + 1] = filled + np.cumsum(counts)
      filled += count
    # Shrink to the drawn count in place (no copy of the filled part).
    data.resize(filled, refcheck=False)
    indices.resize(filled, refcheck=False)
    x = scipy.sparse.csr_matrix(
      (data, indices, indptr), shape=(n, self.num_features), copy=False
    )
    x.has_sorted_indices = True
    return x, y

  def _documents(self, model, labels, target, rng):
    """One chunk: ``(row [m], word [m], value [m])``, sorted by row, word."""
    r = len(labels)
    k, t = self.num_classes, self.topics_per_class
    length = STREAM_FACTOR * self.nonzeros[1]
    # Each token's source: a topic of the document's class, of its
    # confusion class, or the background.
    other = (labels + rng.integers(1, k, size=r)) % k if k > 1 else labels
    confusion = rng.uniform(0.0, self.max_confusion, size=r)
    u = rng.random((r, length))
    from_topic = u < self.topic_fraction
    from_other = u < self.topic_fraction * confusion[:, None]
    topic_class = np.where(from_other, other[:, None], labels[:, None])
    mixture = np.cumsum(rng.dirichlet(np.ones(t), size=r), axis=1)
    pick = (rng.random((r, length))[:, :, None] > mixture[:, None, :-1]).sum(
      axis=2
    )
    topic = topic_class * t + pick
    tokens = np.empty((r, length), np.int64)
    inner = np.searchsorted(
      model["inner_cdf"], rng.random(int(from_topic.sum()))
    )
    tokens[from_topic] = model["topics"][
      topic[from_topic], np.minimum(inner, self.topic_words - 1)
    ]
    rank = np.searchsorted(
      model["base_cdf"], rng.random(tokens.size - len(inner))
    )
    tokens[~from_topic] = model["word_of_rank"][
      np.minimum(rank, self.num_features - 1)
    ]
    # Keep the first `target` distinct words of each stream.
    keys = np.arange(r, dtype=np.int64)[:, None] * self.num_features + tokens
    flat = keys.reshape(-1)
    unique, first, counts = np.unique(
      flat, return_index=True, return_counts=True
    )
    row = unique // self.num_features
    order = np.lexsort((first, row))  # by row, then first appearance
    rank = np.arange(len(order)) - np.searchsorted(row[order], row[order])
    kept = np.sort(order[rank < target[row[order]]])  # back to (row, word)
    row, word, tf = row[kept], unique[kept] % self.num_features, counts[kept]
    values = (1.0 + np.log(tf)) * model["idf"][word]
    norms = np.sqrt(np.bincount(row, weights=values * values, minlength=r))
    values = values / norms[row]
    return row, word, values.astype(np.float32)

  def splits(self, seed=0, *, train_size=None, test_size=None):
    """``(x_train, y_train, x_test, y_test)``, the preset's sizes by default.

    Args:
      seed: seeds the rows (train and test are independent draws).
      train_size: training rows (default ``self.train_size``).
      test_size: test rows (default ``self.test_size``).

    Returns:
      CSR float32 ``[N, V]`` rows and int32 ``[N]`` labels, for each split.
    """
    n_train = self.train_size if train_size is None else train_size
    n_test = self.test_size if test_size is None else test_size
    x_train, y_train = self.sample(n_train, seed=[seed, 0])
    x_test, y_test = self.sample(n_test, seed=[seed, 1])
    return x_train, y_train, x_test, y_test


#: LIBSVM's sparse text sets, by shape: rows (train / test), features,
#: classes; nnz per row near their averages (rcv1 ≈ 74, news20 ≈ 80,
#: url ≈ 116 over 2.4 M rows; url here uses the 2 M rows × 3.2 M features
#: and ~100 non-zeros of the scale benchmark).
PRESETS = {
  "rcv1": SparseText(
    "rcv1",
    num_features=47_236,
    num_classes=2,
    train_size=20_242,
    test_size=677_399,
    nonzeros=(50, 100),
    max_confusion=0.42,
  ),
  "news20": SparseText(
    "news20",
    num_features=62_061,
    num_classes=20,
    train_size=15_935,
    test_size=3_993,
    nonzeros=(50, 100),
    max_confusion=0.55,
  ),
  "url": SparseText(
    "url",
    num_features=3_231_961,
    num_classes=2,
    train_size=2_000_000,
    test_size=20_000,
    nonzeros=(80, 120),
    topic_words=5000,
    max_confusion=0.35,
  ),
}


def sparse_text(preset: str = "rcv1", **overrides) -> SparseText:
  """A ``PRESETS`` entry, with fields replaced by ``overrides``.

  Example: ``sparse_text("rcv1", train_size=2000).splits(seed=0)``.
  """
  base = checks.lookup(PRESETS, preset, "sparse text preset")
  return dataclasses.replace(base, **overrides)
