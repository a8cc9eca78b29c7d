"""The optional PyTorch peer: the same recipe as ``fit`` with ``nn.Linear``.

An eager CPU loop, the usual PyTorch way: zero-initialized ``nn.Linear(D,
C)``, a fresh ``randperm`` each epoch, minibatches of B, SGD with momentum
0.9 and the same per-step cosine schedule ½(1 + cos(π t / T)) as
``linear_jax.optimizers``, and the L2 penalty λ ΣW² as ``weight_decay = 2λ``
on W only (its gradient 2λW, b unregularized). Losses: ``CrossEntropyLoss``
(softmax) and C · ``MultiMarginLoss`` (the Weston–Watkins hinge: PyTorch's
divides by C). PyTorch is an optional extra: ``available()`` says why not.
"""

from __future__ import annotations

import math
import time

import numpy as np


def available() -> str | None:
  """None if ``import torch`` works, else the reason it does not."""
  try:
    import torch  # noqa: F401  pylint: disable=unused-import
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {e}"
  return None


def train(x_train, y_train, x_test, y_test, *, loss: str, epochs: int,
          learning_rate: float, reg_strength: float, batch_size: int,
          momentum: float = 0.9, seed: int = 0) -> tuple[float, float]:
  """Trains for ``epochs`` epochs; ``(train seconds, test accuracy)``.

  Args:
    x_train, x_test: float32 ``[N, D]`` features.
    y_train, y_test: ``[N]`` integer labels in [0, C).
    loss: ``"softmax"`` or ``"svm"``.
    epochs, learning_rate, reg_strength, batch_size, momentum: the recipe.
    seed: seeds the permutations.

  Returns:
    Seconds of the training loop (evaluation excluded) and test accuracy.
  """
  import torch  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  x = torch.from_numpy(np.array(x_train, np.float32))  # a writable copy
  y = torch.from_numpy(np.array(y_train, np.int64))
  n, d = x.shape
  c = int(max(y_train.max(), y_test.max())) + 1
  model = torch.nn.Linear(d, c)
  torch.nn.init.zeros_(model.weight)
  torch.nn.init.zeros_(model.bias)
  opt = torch.optim.SGD(
      [{"params": [model.weight], "weight_decay": 2 * reg_strength},
       {"params": [model.bias], "weight_decay": 0.0}],
      lr=learning_rate, momentum=momentum)
  batch = min(batch_size, n)
  steps = n // batch
  total = steps * epochs
  sched = torch.optim.lr_scheduler.LambdaLR(
      opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
  if loss == "softmax":
    criterion = torch.nn.CrossEntropyLoss()
  elif loss == "svm":
    hinge = torch.nn.MultiMarginLoss()
    criterion = lambda s, t: c * hinge(s, t)
  else:
    raise ValueError(f"torch peer has no loss {loss!r}; softmax or svm")
  start = time.perf_counter()
  for _ in range(epochs):
    perm = torch.randperm(n)
    for i in range(steps):
      idx = perm[i * batch:(i + 1) * batch]
      opt.zero_grad(set_to_none=True)
      criterion(model(x[idx]), y[idx]).backward()
      opt.step()
      sched.step()
  seconds = time.perf_counter() - start
  with torch.no_grad():
    xt = torch.from_numpy(np.array(x_test, np.float32))
    predicted = model(xt).argmax(dim=1).numpy()
  return seconds, float(np.mean(predicted == np.asarray(y_test)))
