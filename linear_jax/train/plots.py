"""PNG plots: learning curves, weights as class templates, decision regions.

matplotlib is imported lazily with the Agg backend (no display needed).
Every figure is written through ``linear_jax.io.atomic_write``.
"""

from __future__ import annotations

import numpy as np

from linear_jax import io


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path: str, *, dpi: int = 100) -> str:
  """Writes ``fig`` as a PNG at ``path`` atomically, closes it; returns path."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  try:
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
  finally:
    plt.close(fig)
  return path


def plot_curves(history: list[dict], path: str, title: str = "") -> str:
  """Loss (data + reg) and train/val accuracy per epoch, side by side."""
  plt = _pyplot()
  epochs = [h["epoch"] for h in history]
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
  ax_loss.plot(epochs, [h["data_loss"] + h["reg_loss"] for h in history],
               "o-", label="full loss L")
  ax_loss.plot(epochs, [h["data_loss"] for h in history], "s--",
               label="data loss (1/N)ΣL_i")
  ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
  ax_loss.legend()
  ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-",
              label="train (running)")
  ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "s-",
              label="validation")
  ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
  ax_acc.legend()
  fig.suptitle(title)
  fig.tight_layout()
  return save_figure(fig, path)


def weight_templates(w: np.ndarray, image_shape) -> np.ndarray:
  """Columns of W ``[D, C]`` as images ``[C, H, W, ch]`` rescaled to [0, 1].

  As in the lecture's "interpreting a linear classifier" slide, all templates
  share one min-max rescaling. Extra rows (a bias-trick row) are dropped.
  """
  size = int(np.prod(image_shape))
  w = np.asarray(w)[:size].T.reshape((-1,) + tuple(image_shape))
  lo, hi = w.min(), w.max()
  return (w - lo) / max(hi - lo, 1e-12)


def plot_templates(w, image_shape, class_names, path: str, title: str = "") -> str:
  """The learned weights, one image per class."""
  plt = _pyplot()
  images = weight_templates(w, image_shape)
  num = images.shape[0]
  fig, axes = plt.subplots(1, num, figsize=(1.4 * num, 1.8))
  for ax, image, name in zip(np.atleast_1d(axes), images, class_names):
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image,
              cmap="gray" if image.shape[-1] == 1 else None,
              interpolation="nearest")
    ax.set_title(str(name), fontsize=8)
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_decision_regions(predict_fn, x: np.ndarray, y: np.ndarray, path: str,
                          title: str = "") -> str:
  """For 2-D data: the argmax regions of a classifier and the points.

  ``predict_fn`` maps raw 2-D points ``[M, 2]`` to labels ``[M]``.
  """
  plt = _pyplot()
  x = np.asarray(x)
  lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
  gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300),
                       np.linspace(lo[1], hi[1], 300))
  grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
  regions = np.asarray(predict_fn(grid)).reshape(gx.shape)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.contourf(gx, gy, regions, alpha=0.3, cmap="tab10",
              levels=np.arange(regions.max() + 2) - 0.5)
  ax.scatter(x[:, 0], x[:, 1], c=y, s=6, cmap="tab10",
             vmin=0, vmax=9)
  ax.set(title=title, xlabel="x1", ylabel="x2")
  fig.tight_layout()
  return save_figure(fig, path)
