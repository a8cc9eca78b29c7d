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
Δ, momentum, seed) are arrays, so refitting with new values or data of the
same shapes does not recompile. Inference is in float64 NumPy.

scikit-learn checks expected to fail: ``EXPECTED_FAILED_CHECKS`` (the reason
beside each); pass it to ``parametrize_with_checks(expected_failed_checks=)``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from linear_jax.train import epoch as epoch_lib

#: scikit-learn estimator checks this estimator does not pass, with why.
EXPECTED_FAILED_CHECKS = {}

#: How many times the training program was traced (each trace compiles once).
TRACE_COUNT = [0]


@functools.lru_cache(maxsize=32)
def _train_program(config: epoch_lib.TrainConfig):
  """jit(epochs × train_epoch) for one static ``TrainConfig``."""

  def run(state, hparams, data):
    TRACE_COUNT[0] += 1
    return jax.lax.fori_loop(
      0,
      config.epochs,
      lambda _, s: epoch_lib.train_epoch(s, hparams, data, config=config)[0],
      state,
    )

  return jax.jit(run)


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

  Attributes (after ``fit``):
    classes_: ``[C]`` the labels, in column order of the scores.
    coef_: float32 ``[D, C]`` W; intercept_: float32 ``[C]`` b.
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
    """Trains on ``X [N, D]``, labels ``y [N]`` of any kind; returns self."""
    X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
      raise ValueError(
        f"LinearClassifier needs samples of at least 2 classes; got 1 class "
        f"({classes[0]!r}); pass labels of two or more classes"
      )
    n, d = X.shape
    config = self._config(n)
    hparams = epoch_lib.make_hparams(
      learning_rate=self.learning_rate,
      reg_strength=self.reg_strength,
      margin=self.margin,
      momentum=self.momentum,
      l1_ratio=self.l1_ratio,
    )
    x32 = np.asarray(X, np.float32)
    # Validation accuracy is not used here: one row keeps its cost nil.
    data = epoch_lib.DeviceData.put(x32, codes, x32[:1], codes[:1])
    state = epoch_lib.init_state(config, hparams, self.seed, d, len(classes), n)
    state = _train_program(config)(state, hparams, data)
    params = jax.device_get(state.params)
    if not (
      np.all(np.isfinite(params["W"])) and np.all(np.isfinite(params["b"]))
    ):
      raise ValueError(
        f"training diverged (NaN/Inf weights) at learning_rate="
        f"{self.learning_rate}; lower the learning rate"
      )
    self.classes_ = classes
    self.coef_ = np.asarray(params["W"])
    self.intercept_ = np.asarray(params["b"])
    return self

  def _scores(self, X) -> np.ndarray:
    check_is_fitted(self)
    X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
    return np.asarray(X, np.float64) @ self.coef_.astype(
      np.float64
    ) + self.intercept_.astype(np.float64)

  def decision_function(self, X) -> np.ndarray:
    """Scores s = xW + b ``[N, C]``; for 2 classes s_1 − s_0 ``[N]``."""
    s = self._scores(X)
    return s[:, 1] - s[:, 0] if len(self.classes_) == 2 else s

  def predict(self, X) -> np.ndarray:
    """The label of the highest score ``[N]``."""
    scores = self._scores(X)  # checks fitted before classes_ is read
    return self.classes_[np.argmax(scores, axis=1)]

  def _is_softmax(self):
    return self.loss == "softmax"

  @available_if(_is_softmax)
  def predict_proba(self, X) -> np.ndarray:
    """Softmax probabilities p = softmax(s) ``[N, C]`` (softmax loss only)."""
    s = self._scores(X)
    s -= s.max(axis=1, keepdims=True)  # softmax(s) = softmax(s − max s)
    p = np.exp(s)
    return p / p.sum(axis=1, keepdims=True)

  @available_if(_is_softmax)
  def predict_log_proba(self, X) -> np.ndarray:
    """Log softmax(s) ``[N, C]`` (softmax loss only)."""
    s = self._scores(X)
    s -= s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))
