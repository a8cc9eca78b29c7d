"""scikit-learn peers of the time-to-accuracy section, fit on the same arrays.

- ``SGDClassifier(loss="hinge" | "log_loss", max_iter=5, tol=None)``: one-vs-
  rest linear SVM / logistic regression, exactly 5 epochs of SGD with
  scikit-learn's own defaults (α = 1e-4, "optimal" learning rate), as in the
  reference numbers of the shared CIFAR-10 JPEG set.
- ``LogisticRegression(solver="lbfgs", C=1e-3, max_iter=100)``: multinomial
  softmax, full-batch L-BFGS (the slow one, ~40 s on CIFAR-10).

Each returns ``(fit seconds, test accuracy)``; seconds count ``fit`` only
(including scikit-learn's own conversion of X to float64), one run.
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def _fit_and_score(model, x_train, y_train, x_test, y_test):
  from sklearn.exceptions import ConvergenceWarning
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.perf_counter()
    model.fit(np.asarray(x_train), np.asarray(y_train))
    seconds = time.perf_counter() - start
  return seconds, float(model.score(np.asarray(x_test), np.asarray(y_test)))


def sgd_classifier(loss: str, x_train, y_train, x_test, y_test, *,
                   max_iter: int = 5, seed: int = 0) -> tuple[float, float]:
  """``SGDClassifier(loss=loss)`` for exactly ``max_iter`` epochs.

  Args:
    loss: ``"hinge"`` or ``"log_loss"``.
    x_train, x_test: ``[N, D]`` standardized features.
    y_train, y_test: ``[N]`` integer labels.
    max_iter: epochs (``tol=None``: no early stop).
    seed: ``random_state``.

  Returns:
    ``(fit seconds, test accuracy)``.
  """
  from sklearn.linear_model import SGDClassifier
  model = SGDClassifier(loss=loss, max_iter=max_iter, tol=None,
                        random_state=seed)
  return _fit_and_score(model, x_train, y_train, x_test, y_test)


def logistic_regression(x_train, y_train, x_test, y_test, *, C: float = 1e-3,
                        max_iter: int = 100) -> tuple[float, float]:
  """``LogisticRegression(solver="lbfgs", C=C, max_iter=max_iter)``.

  Args/Returns as ``sgd_classifier``; ``C`` is the inverse L2 strength.
  """
  from sklearn.linear_model import LogisticRegression
  model = LogisticRegression(solver="lbfgs", C=C, max_iter=max_iter)
  return _fit_and_score(model, x_train, y_train, x_test, y_test)
