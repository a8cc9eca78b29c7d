"""``LinearClassifier``: linear_jax's training behind scikit-learn's estimator API.

For example::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LinearClassifier(loss="svm",
                                                           reg_strength=1e-3))
    clf.fit(x, y).score(x_test, y_test)

Any labels (ints, strings) are mapped to [0, C) by ``np.unique`` and back by
``classes_``. Training is ``linear_jax.train.train_epoch`` (the same
objective, optimizers and schedules as the binaries) run for ``epochs``
epochs inside one jitted program, cached per static choice (loss, reg,
optimizer, schedule, batch size, epochs): numeric knobs (λ, learning rate,
Δ, momentum, seed, class weights) are arrays, so refitting with new values
or data of the same shapes does not recompile. Nor do nearby shapes, as a
cross-validation's folds have: dense inputs are padded to a bucket of rows
(full batch; the padded rows weigh 0) and features (zero columns, under
``l2`` or no penalty): to at least 64 rows and 8 features, and above
that at most 25 % more of each (``_padded``). Training runs in float32, or
in float64 when X is float64 and JAX's x64 mode is on
(``jax.config.update("jax_enable_x64", True)``). Inference is in float64
NumPy, from ``coef_`` and ``intercept_`` in scikit-learn's layout.

scikit-learn checks expected to fail: ``EXPECTED_FAILED_CHECKS`` (the reason
beside each); pass it to ``parametrize_with_checks(expected_failed_checks=)``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import scipy.sparse
import scipy.special
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from linear_jax.data import preprocessing
from linear_jax.train import epoch as epoch_lib
from linear_jax.train import loop

#: scikit-learn estimator checks this estimator does not pass, with why.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

#: How many times the training program was traced (each trace compiles once).
TRACE_COUNT = [0]


@functools.lru_cache(maxsize=32)
def _train_program(config: epoch_lib.TrainConfig):
  """jit(epochs × train_epoch) for one static ``TrainConfig``."""

  def run(state, hparams, data, sample_weight):
    TRACE_COUNT[0] += 1
    return jax.lax.fori_loop(
      0,
      config.epochs,
      lambda _, s: epoch_lib.train_epoch(
        s, hparams, data, config=config, sample_weight=sample_weight
      )[0],
      state,
    )

  return jax.jit(run)


#: Dense inputs up to this many entries are padded to a bucket of rows and
#: features (``_bucket``); larger ones are trained at their own shape, where
#: compiling is a small part of the fit and a padded copy is not.
MAX_PADDED_ENTRIES = 1 << 24


def _bucket(size: int, smallest: int) -> int:
  """``size`` rounded up to ``smallest``, or above it to a multiple of a
  quarter of its largest power of two: at most 25 % more, and the sizes of
  a cross-validation's folds mostly share one bucket.
  """
  if size <= smallest:
    return smallest
  step = 1 << max(size.bit_length() - 3, 0)
  return -(-size // step) * step


def _padded(x: np.ndarray, weights: np.ndarray, codes, reg: str, full_batch):
  """``x``, the example weights and the codes, padded for a shared program
  (a padded ``x`` is in ``weights``' dtype, the one training computes in;
  ``x`` is returned as it is when no padding applies).

  Rows are padded only for a full-batch fit, with weight 0 (no part in the
  data term, its gradient or the step); features only under ``l2`` or no
  penalty: a zero feature's weights then get a zero gradient and stay 0
  from the zero start (L1's subgradient at 0 is not 0 in JAX). The fit is
  the unpadded one, up to float rounding.
  """
  n, d = x.shape
  if x.size > MAX_PADDED_ENTRIES:
    return x, weights, codes
  rows = _bucket(n, 64) if full_batch else n
  features = _bucket(d, 8) if reg in ("l2", "none") else d
  if (rows, features) == (n, d):
    return x, weights, codes
  padded = np.zeros((rows, features), weights.dtype)
  padded[:n, :d] = x
  return (
    padded,
    np.concatenate([weights, np.zeros(rows - n, weights.dtype)]),
    np.concatenate([codes, np.zeros(rows - n, codes.dtype)]),
  )


class LinearClassifier(ClassifierMixin, BaseEstimator):
  """A linear classifier s = xW + b trained by minimizing (1/N) Σ L_i + λR(W).

  Args:
    loss: ``"softmax"``, ``"svm"``, ``"squared_svm"`` or ``"crammer_singer"``.
    reg: ``"l2"``, ``"l1"``, ``"elastic_net"`` or ``"none"``.
    reg_strength: λ ≥ 0.
    optimizer: ``"lbfgs"`` (full batch; one step per epoch), ``"sgd"``,
      ``"momentum"``, ``"nesterov"``, ``"adam"`` or ``"adamw"``.
    learning_rate: step size (ignored by lbfgs, which line-searches).
    epochs: passes over the data.
    batch_size: minibatch size; None means full batch (required by lbfgs).
    schedule: ``"constant"``, ``"cosine"``, ``"step"`` or ``"exponential"``.
    margin: Δ of the hinge losses.
    momentum: for ``momentum``/``nesterov``.
    l1_ratio: ρ of ``elastic_net``.
    seed: seeds the minibatch order.
    class_weight: None (every example weighs 1), ``"balanced"`` (class k
      weighs N / (C · N_k), as ``sklearn.utils.class_weight.
      compute_class_weight``) or a dict {label: weight ≥ 0} (labels left out
      weigh 1). The data term is the weighted mean Σ w_i L_i / Σ w_i (of
      each minibatch, with minibatches), so only the ratios of the weights
      matter; scikit-learn's
      ``LogisticRegression(C=C, class_weight=...)`` is this softmax problem
      with λ = 1 / (2·C·Σ_i w_i) (λ = 1 / (C·Σ_i w_i) for two classes).

  Attributes:
    classes_: ``[C]`` the labels, in column order of the scores (this and
      the attributes below are set by ``fit``).
    coef_: ``[C, D]``, Wᵀ (scikit-learn's layout); for 2 classes ``[1, D]``,
      w_1 − w_0, the weights of s_1 − s_0, as ``LogisticRegression``'s.
    intercept_: ``[C]`` b; for 2 classes ``[1]``, b_1 − b_0.
    n_features_in_: D.
  """

  def __init__(
    self,
    loss="softmax",
    reg="l2",
    reg_strength=1e-4,
    optimizer="lbfgs",
    learning_rate=0.01,
    epochs=100,
    batch_size=None,
    schedule="constant",
    margin=1.0,
    momentum=0.9,
    l1_ratio=0.5,
    seed=0,
    class_weight=None,
  ):
    self.loss = loss
    self.reg = reg
    self.reg_strength = reg_strength
    self.optimizer = optimizer
    self.learning_rate = learning_rate
    self.epochs = epochs
    self.batch_size = batch_size
    self.schedule = schedule
    self.margin = margin
    self.momentum = momentum
    self.l1_ratio = l1_ratio
    self.seed = seed
    self.class_weight = class_weight

  def _config(self, n: int) -> epoch_lib.TrainConfig:
    batch = self.batch_size
    if batch is not None and batch >= n:
      batch = None
    config = epoch_lib.TrainConfig(
      loss=self.loss,
      reg=self.reg,
      optimizer=self.optimizer,
      schedule=self.schedule,
      batch_size=batch,
      epochs=int(self.epochs),
    )
    config.validate()
    epoch_lib.check_lbfgs_full_batch(config, n)
    return config

  def fit(self, X, y):
    """Trains on ``X [N, D]`` (dense or ``scipy.sparse``, kept sparse),
    labels ``y [N]`` of any kind; returns self.
    """
    X, y = validate_data(
      self, X, y, dtype=(np.float64, np.float32), accept_sparse="csr"
    )
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
      raise ValueError(
        f"LinearClassifier needs samples of at least 2 classes; got 1 class "
        f"({classes[0]!r}); pass labels of two or more classes"
      )
    class_weight = self._class_weight_vector(classes, y, codes)
    n, d = X.shape
    config = self._config(n)
    dtype = _train_dtype(X.dtype)
    # Every example's weight (its class's, else 1) rides in one [N] array,
    # so weighted and unweighted fits share a program.
    weights: np.ndarray = (
      np.ones(n, dtype) if class_weight is None else class_weight[codes]
    ).astype(dtype)
    hparams = epoch_lib.make_hparams(
      learning_rate=self.learning_rate,
      reg_strength=self.reg_strength,
      margin=self.margin,
      momentum=self.momentum,
      l1_ratio=self.l1_ratio,
      dtype=dtype,
    )
    # Training computes in float32: values beyond its range are refused
    # (feature and value named) before the cast would make them inf.
    preprocessing.check_finite(X, "train", name="X")
    # Data of nearby shapes share one compiled program (_padded).
    if not scipy.sparse.issparse(X):
      X, weights, codes = _padded(
        X, weights, codes, self.reg, config.batch_size is None
      )
    # Validation accuracy is not used here: one row keeps its cost nil.
    data = epoch_lib.DeviceData.put(X, codes, X[:1], codes[:1], dtype=dtype)
    rows, features = X.shape
    del X  # a padded host copy is not kept through training
    state = epoch_lib.init_state(
      config, hparams, self.seed, features, len(classes), rows, dtype
    )
    state = _train_program(config)(state, hparams, data, weights)
    params = jax.device_get(state.params)
    params["W"] = params["W"][:d]
    if not (
      np.all(np.isfinite(params["W"])) and np.all(np.isfinite(params["b"]))
    ):
      raise epoch_lib.DivergedError(
        "training diverged (NaN/Inf weights): "
        + loop.divergence_cause(
          learning_rate=float(self.learning_rate),
          optimizer=self.optimizer,
          scale=loop.feature_scale(data),
          rescale="StandardScaler",
        )
      )
    self.classes_ = classes
    self.coef_, self.intercept_ = _sklearn_layout(
      np.asarray(params["W"]), np.asarray(params["b"])
    )
    return self

  def _class_weight_vector(self, classes, y, codes):
    """``class_weight`` as ``[C]`` weights in ``classes_`` order, or None."""
    if self.class_weight is None:
      return None
    if not isinstance(self.class_weight, dict) and not (
      isinstance(self.class_weight, str) and self.class_weight == "balanced"
    ):
      raise ValueError(
        f"class_weight must be None, 'balanced' or a dict {{label: weight}}, "
        f"got {self.class_weight!r}"
      )
    weights = compute_class_weight(self.class_weight, classes=classes, y=y)
    if not np.all(np.isfinite(weights) & (weights >= 0)):
      raise ValueError(
        f"class_weight values must be finite and ≥ 0, got {self.class_weight}"
        f"; pass non-negative weights"
      )
    if not np.any(weights[codes] > 0):
      raise ValueError(
        f"class_weight {self.class_weight} gives every example weight 0; "
        f"give at least one class present in y a positive weight"
      )
    return weights

  def __sklearn_tags__(self):
    """scikit-learn's tags: sparse input is accepted (trained sparse)."""
    tags = super().__sklearn_tags__()
    tags.input_tags.sparse = True
    return tags

  def decision_function(self, X) -> np.ndarray:
    """x·coef_ᵀ + intercept_: scores ``[N, C]``; for 2 classes ``[N]``,
    s_1 − s_0 (> 0 means ``classes_[1]``), as ``LogisticRegression``.
    """
    check_is_fitted(self)
    X = validate_data(
      self, X, reset=False, dtype=(np.float64, np.float32), accept_sparse="csr"
    )
    # The model was fitted in float32: inputs beyond its range are refused
    # as in ``fit`` rather than scored into ±inf.
    preprocessing.check_finite(X, "inputs", name="X")
    # Dense or scipy.sparse X: the product is a dense [N, C] array.
    scores = np.asarray(
      X.astype(np.float64) @ self.coef_.T.astype(np.float64)
    ) + self.intercept_.astype(np.float64)
    return scores[:, 0] if scores.shape[1] == 1 else scores

  def _class_scores(self, X) -> np.ndarray:
    """Scores ``[N, C]`` up to a per-row constant: [0, s_1 − s_0] for 2
    classes (argmax and softmax are unchanged by the shift).
    """
    scores = self.decision_function(X)
    if scores.ndim == 1:
      return np.stack([np.zeros_like(scores), scores], axis=1)
    return scores

  def predict(self, X) -> np.ndarray:
    """The label of the highest score ``[N]`` (ties go to the first)."""
    scores = self._class_scores(X)  # checks fitted before classes_ is read
    return self.classes_[np.argmax(scores, axis=1)]

  def _is_softmax(self):
    return self.loss == "softmax"

  @available_if(_is_softmax)
  def predict_proba(self, X) -> np.ndarray:
    """Softmax probabilities p = softmax(s) ``[N, C]`` (softmax loss only);
    for 2 classes [1 − σ(s_1 − s_0), σ(s_1 − s_0)].
    """
    return scipy.special.softmax(self._class_scores(X), axis=1)

  @available_if(_is_softmax)
  def predict_log_proba(self, X) -> np.ndarray:
    """Log softmax(s) ``[N, C]`` (softmax loss only)."""
    return scipy.special.log_softmax(self._class_scores(X), axis=1)


def _train_dtype(x_dtype) -> type:
  """float64 for float64 inputs under JAX's x64 mode, else float32."""
  if (
    x_dtype == np.float64
    and jax.dtypes.canonicalize_dtype(np.float64) == np.float64
  ):
    return np.float64
  return np.float32


def _sklearn_layout(w: np.ndarray, b: np.ndarray):
  """linear_jax's ``W [D, C]``, ``b [C]`` as scikit-learn's ``coef_``,
  ``intercept_``: ``[C, D]`` and ``[C]``; for 2 classes one row, the
  difference w_1 − w_0 ``[1, D]`` and ``[1]`` b_1 − b_0 (softmax and argmax
  depend only on s_1 − s_0).
  """
  if w.shape[1] == 2:
    return (w[:, 1] - w[:, 0])[None, :], (b[1:] - b[:1])
  return np.ascontiguousarray(w.T), b
