"""The peers linear_jax is timed against: NumPy, scikit-learn, PyTorch.

NumPy: each loss and its gradient, fully vectorized, by hand.

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

scikit-learn, fit on the same arrays as ``fit`` (each returns ``(fit
seconds, test accuracy)``; seconds count ``fit`` only, including
scikit-learn's own conversion of X to float64, one run):

- ``SGDClassifier(loss="hinge" | "log_loss", max_iter=5, tol=None)``: one-vs-
  rest linear SVM / logistic regression, exactly 5 epochs of SGD with
  scikit-learn's own defaults (α = 1e-4, "optimal" learning rate);
- ``LogisticRegression(solver="lbfgs", C=1e-3, max_iter=100)``: multinomial
  softmax, full-batch L-BFGS (the slow one).

PyTorch (optional; ``torch_available()`` says why not): the same recipe as
``fit`` with ``nn.Linear``, an eager loop, the usual PyTorch way:
zero-initialized ``nn.Linear(D, C)``, a fresh ``randperm`` each epoch,
minibatches of B, SGD with momentum 0.9 and the same per-step cosine schedule
½(1 + cos(π t / T)) as ``linear_jax.optimizers``, and the L2 penalty λ ΣW² as
``weight_decay = 2λ`` on W only (its gradient 2λW, b unregularized). Losses:
``CrossEntropyLoss`` (softmax) and C · ``MultiMarginLoss`` (the
Weston–Watkins hinge: PyTorch's divides by C). On a CUDA machine it runs on
the GPU with TF32 matmuls, as XLA's default precision does.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np


def _scores(W, b, X):
  """S = XW + b ``[N, C]`` and the row indices ``arange(N)``."""
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


def _fit_and_score(model, x_train, y_train, x_test, y_test):
  from sklearn.exceptions import ConvergenceWarning  # pylint: disable=g-import-not-at-top

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.perf_counter()
    model.fit(np.asarray(x_train), np.asarray(y_train))
    seconds = time.perf_counter() - start
  return seconds, float(model.score(np.asarray(x_test), np.asarray(y_test)))


def sgd_classifier(
  loss: str,
  x_train,
  y_train,
  x_test,
  y_test,
  *,
  max_iter: int = 5,
  seed: int = 0,
) -> tuple[float, float]:
  """``SGDClassifier(loss=loss)`` for exactly ``max_iter`` epochs.

  Args:
    loss: ``"hinge"`` or ``"log_loss"``.
    x_train: ``[N, D]`` standardized training features.
    y_train: ``[N]`` integer labels.
    x_test: ``[M, D]`` standardized test features.
    y_test: ``[M]`` integer labels.
    max_iter: epochs (``tol=None``: no early stop).
    seed: ``random_state``.

  Returns:
    ``(fit seconds, test accuracy)``.
  """
  from sklearn.linear_model import SGDClassifier  # pylint: disable=g-import-not-at-top

  model = SGDClassifier(
    loss=loss, max_iter=max_iter, tol=None, random_state=seed
  )
  return _fit_and_score(model, x_train, y_train, x_test, y_test)


def logistic_regression(
  x_train, y_train, x_test, y_test, *, C: float = 1e-3, max_iter: int = 100
) -> tuple[float, float]:
  """``LogisticRegression(solver="lbfgs", C=C, max_iter=max_iter)``.

  Args/Returns as ``sgd_classifier``; ``C`` is the inverse L2 strength.
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  model = LogisticRegression(solver="lbfgs", C=C, max_iter=max_iter)
  return _fit_and_score(model, x_train, y_train, x_test, y_test)


def torch_available() -> str | None:
  """None if ``import torch`` works, else the reason it does not."""
  try:
    import torch  # noqa: F401  pylint: disable=unused-import,g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {e}"
  return None


class TorchLinear:
  """``nn.Linear`` trained by minibatch SGD with momentum, one epoch a call.

  Args:
    x_train: float32 ``[N, D]`` features (copied to the torch device).
    y_train: ``[N]`` integer labels in [0, C).
    num_classes: C.
    loss: ``"softmax"`` or ``"svm"``.
    epochs: T / steps per epoch of the cosine schedule (None: constant rate).
    learning_rate, reg_strength, batch_size, momentum: the recipe.
    seed: seeds the permutations.
  """

  def __init__(
    self,
    x_train,
    y_train,
    *,
    num_classes: int,
    loss: str,
    learning_rate: float,
    reg_strength: float,
    batch_size: int,
    epochs: int | None = None,
    momentum: float = 0.9,
    seed: int = 0,
  ):
    import torch  # pylint: disable=g-import-not-at-top

    self.torch = torch
    torch.manual_seed(seed)
    self.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    self.x = torch.from_numpy(np.array(x_train, np.float32)).to(self.device)
    self.y = torch.from_numpy(np.array(y_train, np.int64)).to(self.device)
    n, d = self.x.shape
    self.model = torch.nn.Linear(d, num_classes).to(self.device)
    torch.nn.init.zeros_(self.model.weight)
    torch.nn.init.zeros_(self.model.bias)
    self.opt = torch.optim.SGD(
      [
        {"params": [self.model.weight], "weight_decay": 2 * reg_strength},
        {"params": [self.model.bias], "weight_decay": 0.0},
      ],
      lr=learning_rate,
      momentum=momentum,
    )
    self.batch = min(batch_size, n)
    self.steps = n // self.batch
    self.sched = None
    if epochs is not None:
      total = self.steps * epochs
      self.sched = torch.optim.lr_scheduler.LambdaLR(
        self.opt,
        lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)),
      )
    if loss == "softmax":
      self.criterion = torch.nn.CrossEntropyLoss()
    elif loss == "svm":
      hinge = torch.nn.MultiMarginLoss()
      self.criterion = lambda s, t: num_classes * hinge(s, t)
    else:
      raise ValueError(f"torch peer has no loss {loss!r}; softmax or svm")

  def epoch(self) -> None:
    """One pass over a fresh permutation."""
    perm = self.torch.randperm(self.x.shape[0], device=self.device)
    for i in range(self.steps):
      idx = perm[i * self.batch : (i + 1) * self.batch]
      self.opt.zero_grad(set_to_none=True)
      self.criterion(self.model(self.x[idx]), self.y[idx]).backward()
      self.opt.step()
      if self.sched is not None:
        self.sched.step()

  def sync(self, _=None) -> None:
    """Waits for the device (``timing.median_seconds``' ``sync``)."""
    if self.device == "cuda":
      self.torch.cuda.synchronize()

  def accuracy(self, x_test, y_test) -> float:
    """Test accuracy of the current weights."""
    with self.torch.no_grad():
      xt = self.torch.from_numpy(np.array(x_test, np.float32)).to(self.device)
      predicted = self.model(xt).argmax(dim=1).cpu().numpy()
    return float(np.mean(predicted == np.asarray(y_test)))


def torch_train(
  x_train,
  y_train,
  x_test,
  y_test,
  *,
  loss: str,
  epochs: int,
  learning_rate: float,
  reg_strength: float,
  batch_size: int,
  seed: int = 0,
) -> tuple[float, float]:
  """Trains ``TorchLinear`` for ``epochs``; ``(train seconds, test accuracy)``
  (seconds of the training loop, evaluation excluded).
  """
  num_classes = int(max(np.max(y_train), np.max(y_test))) + 1
  peer = TorchLinear(
    x_train,
    y_train,
    num_classes=num_classes,
    loss=loss,
    learning_rate=learning_rate,
    reg_strength=reg_strength,
    batch_size=batch_size,
    epochs=epochs,
    seed=seed,
  )
  start = time.perf_counter()
  for _ in range(epochs):
    peer.epoch()
  peer.sync()
  seconds = time.perf_counter() - start
  return seconds, peer.accuracy(x_test, y_test)
