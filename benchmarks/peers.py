"""The NumPy peer: each loss and its gradient, fully vectorized, by hand.

Written the course's way (``svm_loss_vectorized`` / ``softmax_loss_vectorized``
of CS231n assignment 1): one matmul for the scores s = XW + b ``[N, C]``, the
per-example score gradient dS ``[N, C]`` in closed form, and one matmul
back, dW = Xᵀ dS / N + 2λW. No autodiff, no loops over examples. The full
loss is the one ``linear_jax.objective`` computes with ``reg="l2"``:

  L = (1/N) Σ_i L_i + λ Σ W²      (the bias b is not regularized)

with m_j = s_j − s_y + Δ:

- ``svm``:            L_i = Σ_{j≠y} max(0, m_j)
- ``squared_svm``:    L_i = Σ_{j≠y} max(0, m_j)²
- ``crammer_singer``: L_i = max(0, max_{j≠y} m_j)
- ``softmax``:        L_i = −log(e^{s_y} / Σ_j e^{s_j})

At a kink (m = 0) the sub-gradient is 0, as in ``linear_jax.losses``. The
arithmetic stays in the dtype of ``X`` and ``W`` (float32 for the benchmark,
float64 in the test that checks these against ``jax.grad`` to 1e-10).
"""

from __future__ import annotations

import numpy as np


def _scores(W, b, X):
  """s = XW + b ``[N, C]`` and the row indices ``arange(N)``."""
  scores = X @ W + b
  rows = np.arange(X.shape[0])
  return scores, rows


def _finish(data_loss, dscores, W, X, reg):
  """(L, dW, db) from Σ_i L_i and dS ``[N, C]`` (both not yet divided by N)."""
  n = X.shape[0]
  dscores /= n
  loss = data_loss / n + reg * np.sum(W * W)
  dW = X.T @ dscores + 2 * reg * W
  db = dscores.sum(axis=0)
  return loss, dW, db


def _hinge_margins(scores, rows, y, margin):
  """max(0, s_j − s_y + Δ) ``[N, C]``, with 0 at j = y."""
  margins = np.maximum(0, scores - scores[rows, y][:, None] + margin)
  margins[rows, y] = 0
  return margins


def svm_loss_vectorized(W, b, X, y, reg, margin=1.0):
  """Weston–Watkins multiclass SVM loss and gradient.

  Args:
    W: ``[D, C]`` weights.
    b: ``[C]`` biases.
    X: ``[N, D]`` examples.
    y: ``[N]`` integer labels in [0, C).
    reg: λ ≥ 0 of the L2 penalty λ Σ W².
    margin: Δ ≥ 0.

  Returns:
    ``(loss, dW [D, C], db [C])``.
  """
  scores, rows = _scores(W, b, X)
  margins = _hinge_margins(scores, rows, y, margin)
  dscores = (margins > 0).astype(scores.dtype)
  dscores[rows, y] = -dscores.sum(axis=1)
  return _finish(margins.sum(), dscores, W, X, reg)


def squared_svm_loss_vectorized(W, b, X, y, reg, margin=1.0):
  """Squared multiclass hinge loss and gradient.

  Args/Returns as ``svm_loss_vectorized``; dS_j = 2 max(0, m_j) for j ≠ y.
  """
  scores, rows = _scores(W, b, X)
  margins = _hinge_margins(scores, rows, y, margin)
  dscores = 2 * margins
  dscores[rows, y] = -dscores.sum(axis=1)
  return _finish(np.sum(margins * margins), dscores, W, X, reg)


def crammer_singer_loss_vectorized(W, b, X, y, reg, margin=1.0):
  """Crammer–Singer hinge loss and gradient.

  Args/Returns as ``svm_loss_vectorized``. Only the worst wrong class
  j* = argmax_{j≠y} s_j counts: dS_{j*} = 1 and dS_y = −1 where
  s_{j*} − s_y + Δ > 0.
  """
  scores, rows = _scores(W, b, X)
  wrong = scores.copy()
  wrong[rows, y] = -np.inf
  worst_class = wrong.argmax(axis=1)
  worst = wrong[rows, worst_class] - scores[rows, y] + margin
  active = (worst > 0).astype(scores.dtype)
  dscores = np.zeros_like(scores)
  dscores[rows, worst_class] = active
  dscores[rows, y] = -active
  return _finish(np.sum(worst * active), dscores, W, X, reg)


def softmax_loss_vectorized(W, b, X, y, reg):
  """Softmax cross-entropy loss and gradient.

  Args/Returns as ``svm_loss_vectorized`` (no Δ). dS = p − onehot(y), with
  p = softmax(s).
  """
  scores, rows = _scores(W, b, X)
  # Softmax is shift-invariant: subtracting max_j s_j keeps every e^s ≤ 1.
  shifted = scores - scores.max(axis=1, keepdims=True)
  exp = np.exp(shifted)
  sum_exp = exp.sum(axis=1)
  data_loss = np.sum(np.log(sum_exp) - shifted[rows, y])
  dscores = exp / sum_exp[:, None]
  dscores[rows, y] -= 1
  return _finish(data_loss, dscores, W, X, reg)


#: Loss name (as in ``linear_jax.LOSSES``) -> NumPy loss-and-gradient.
NUMPY_LOSSES = {
    "svm": svm_loss_vectorized,
    "squared_svm": squared_svm_loss_vectorized,
    "crammer_singer": crammer_singer_loss_vectorized,
    "softmax": softmax_loss_vectorized,
}
