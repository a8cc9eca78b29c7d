"""PNG plots: learning curves, weights as class templates, decision regions,
and the error decomposition (stacked terms, terms against n).

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
  ax_loss.plot(
    epochs,
    [h["data_loss"] + h["reg_loss"] for h in history],
    "o-",
    label="full loss L",
  )
  ax_loss.plot(
    epochs,
    [h["data_loss"] for h in history],
    "s--",
    label="data loss (1/N)ΣL_i",
  )
  ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
  ax_loss.legend()
  ax_acc.plot(
    epochs,
    [h["train_accuracy"] for h in history],
    "o-",
    label="train (running)",
  )
  ax_acc.plot(
    epochs, [h["val_accuracy"] for h in history], "s-", label="validation"
  )
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


def plot_templates(
  w, image_shape, class_names, path: str, title: str = ""
) -> str:
  """The learned weights, one image per class."""
  plt = _pyplot()
  images = weight_templates(w, image_shape)
  num = images.shape[0]
  fig, axes = plt.subplots(1, num, figsize=(1.4 * num, 1.8))
  for ax, image, name in zip(
    np.atleast_1d(axes), images, class_names, strict=False
  ):
    ax.imshow(
      image[..., 0] if image.shape[-1] == 1 else image,
      cmap="gray" if image.shape[-1] == 1 else None,
      interpolation="nearest",
    )
    ax.set_title(str(name), fontsize=8)
    ax.axis("off")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_decision_regions(
  predict_fn, x: np.ndarray, y: np.ndarray, path: str, title: str = ""
) -> str:
  """For 2-D data: the argmax regions of a classifier and the points.

  ``predict_fn`` maps raw 2-D points ``[M, 2]`` to labels ``[M]``.
  """
  plt = _pyplot()
  x = np.asarray(x)
  lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
  gx, gy = np.meshgrid(
    np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300)
  )
  grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
  regions = np.asarray(predict_fn(grid)).reshape(gx.shape)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.contourf(
    gx,
    gy,
    regions,
    alpha=0.3,
    cmap="tab10",
    levels=np.arange(regions.max() + 2) - 0.5,
  )
  ax.scatter(x[:, 0], x[:, 1], c=y, s=6, cmap="tab10", vmin=0, vmax=9)
  ax.set(title=title, xlabel="x1", ylabel="x2")
  fig.tight_layout()
  return save_figure(fig, path)


#: Colours of the error-decomposition terms, bottom to top of a bar.
TERM_COLOURS = {
  "bayes": "#7f7f7f",
  "approximation": "#d62728",
  "approx_plus_bayes": "#b35806",
  "estimation": "#1f77b4",
  "optimization": "#2ca02c",
  "total_excess": "#000000",
}
TERM_LABELS = {
  "bayes": "Bayes R*",
  "approximation": "approximation",
  "approx_plus_bayes": "approximation + Bayes",
  "estimation": "estimation",
  "optimization": "optimization",
  "total_excess": "total excess",
}


def plot_decomposition_bars(rows: list[dict], path: str) -> str:
  """One stacked bar per (dataset, loss): Bayes, approximation, estimation,
  optimization (the error-decomposition slide), in percent.

  ``rows`` are ``decomposition.decompose`` rows (one per bar). Where R* is
  unknown the bottom segment is "approximation + Bayes". A term below 0
  is drawn hatched, downwards from the sum of the terms below it, so the
  top of a bar is R(f̃_n); the whisker is R(f̃_n) ± its error.
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rows) + 3), 4.5))
  seen: dict[str, None] = {}  # terms drawn, in order, for the legend
  for i, row in enumerate(rows):
    terms = (
      ("bayes", "approximation")
      if row["bayes"] is not None
      else ("approx_plus_bayes",)
    ) + ("estimation", "optimization")
    bottom = 0.0
    for term in terms:
      height = 100 * row[term]
      ax.bar(
        i,
        height,
        bottom=bottom,
        color=TERM_COLOURS[term],
        alpha=1.0 if height >= 0 else 0.5,
        hatch=(
          "//" if term == "approx_plus_bayes" else "xx" if height < 0 else None
        ),
      )
      seen.setdefault(term)
      bottom += height
    ax.errorbar(
      i, 100 * row["risk"], yerr=100 * row["risk_se"], color="k", capsize=3
    )
  ax.set_xticks(range(len(rows)))
  ax.set_xticklabels(
    [f"{r['dataset'].rsplit('/', 1)[-1]}\n{r['loss']}" for r in rows],
    fontsize=7,
  )
  ax.set_ylabel("0–1 risk (%)")
  if rows:
    ax.set_title(
      f"error decomposition, n = {rows[0]['n']}, f̃_n: "
      f"{rows[0]['budget']} step(s); surrogate-trained, negative "
      "terms hatched",
      fontsize=8,
    )
  from matplotlib.patches import Patch

  ax.legend(
    handles=[
      Patch(
        facecolor=TERM_COLOURS[t],
        label=TERM_LABELS[t],
        hatch="//" if t == "approx_plus_bayes" else None,
      )
      for t in seen
    ],
    fontsize=7,
    loc="upper left",
    bbox_to_anchor=(1.0, 1.0),
  )
  fig.tight_layout()
  return save_figure(fig, path)


def plot_terms_vs_n(rows: list[dict], budget: int, path: str) -> str:
  """Each term against n (log x; symmetric-log y, since a term can be ≤ 0
  within its error), one panel per dataset, svm solid and others dashed;
  optimization at ``budget`` steps.
  """
  plt = _pyplot()
  datasets = list(dict.fromkeys(r["dataset"] for r in rows))
  losses = list(dict.fromkeys(r["loss"] for r in rows))
  fig, axes = plt.subplots(
    1, len(datasets), squeeze=False, figsize=(3.4 * len(datasets), 4.2)
  )
  for ax, name in zip(axes[0], datasets, strict=False):
    for k, loss in enumerate(losses):
      sel = sorted(
        (
          r
          for r in rows
          if r["dataset"] == name
          and r["loss"] == loss
          and r["budget"] == budget
        ),
        key=lambda r: r["n"],
      )
      known = sel and sel[0]["bayes"] is not None
      terms = (
        ("approximation", "estimation", "optimization", "total_excess")
        if known
        else ("approx_plus_bayes", "estimation", "optimization")
      )
      for term in terms:
        ax.errorbar(
          [r["n"] for r in sel],
          [100 * r[term] for r in sel],
          yerr=[100 * r[term + "_se"] for r in sel],
          color=TERM_COLOURS[term],
          linestyle="-" if k == 0 else "--",
          marker="o",
          markersize=3,
          capsize=2,
          label=f"{TERM_LABELS[term]} ({loss})",
        )
    ax.set_xscale("log")
    # One labelled tick per n: log-scale minor labels overlap on short ranges.
    sizes = sorted({r["n"] for r in rows if r["dataset"] == name})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_yscale("symlog", linthresh=0.1)
    ax.axhline(0, color="k", linewidth=0.5)
    ax.set(
      title=name.rsplit("/", 1)[-1],
      xlabel="n (training examples)",
      ylabel="percentage points",
    )
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
  fig.suptitle(f"terms against n (f̃_n: {budget} step(s))", fontsize=9)
  fig.tight_layout(rect=(0, 0.16, 1, 1))
  return save_figure(fig, path)


def plot_accuracy_path(
  reg_strengths,
  train_accuracy,
  val_accuracy,
  path: str,
  *,
  selected: float,
  test: tuple[float, float] | None = None,
  title: str = "",
) -> str:
  """Train and validation accuracy against λ (a regularization path).

  The λ axis is symmetric-log, linear below the smallest positive λ, so
  λ = 0 is shown too. The selected λ is a dotted line; ``test`` =
  ``(λ, accuracy)`` of the final model is a star.
  """
  plt = _pyplot()
  lams = np.asarray(reg_strengths, np.float64)
  order = np.argsort(lams)
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for values, style, label in (
    (train_accuracy, "o-", "train"),
    (val_accuracy, "s-", "validation"),
  ):
    ax.plot(
      lams[order], np.asarray(values, np.float64)[order], style, label=label
    )
  ax.axvline(
    selected, color="k", linestyle=":", label=f"selected λ = {selected:.3g}"
  )
  if test is not None:
    ax.plot(
      [test[0]], [test[1]], "*", markersize=12, label=f"test {test[1]:.4f}"
    )
  positive = lams[lams > 0]
  if len(positive):
    ax.set_xscale("symlog", linthresh=float(positive.min()))
  ax.set(xlabel="λ", ylabel="accuracy")
  ax.legend(fontsize=8)
  ax.set_title(title, fontsize=8)
  fig.tight_layout()
  return save_figure(fig, path)
