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


def class_colours(num_classes: int) -> list:
  """One RGBA colour per class, ``tab10`` then ``tab20`` beyond 10 classes;
  regions and points of class k share ``class_colours(C)[k]``.
  """
  plt = _pyplot()
  cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
  return [cmap(k % cmap.N) for k in range(num_classes)]


def plot_decision_regions(
  predict_fn,
  x: np.ndarray,
  y: np.ndarray,
  path: str,
  title: str = "",
  class_names=None,
) -> str:
  """For 2-D data: the argmax regions of a classifier and the points.

  ``predict_fn`` maps raw 2-D points ``[M, 2]`` to labels ``[M]``. Region
  and point of class k have the same colour (the region lighter), so a
  point on a region of another colour is misclassified; the legend names
  the classes (``class_names``, default ``0..C-1``).
  """
  plt = _pyplot()
  from matplotlib.colors import ListedColormap  # pylint: disable=g-import-not-at-top
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top

  x, y = np.asarray(x), np.asarray(y).astype(int)
  lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
  gx, gy = np.meshgrid(
    np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300)
  )
  grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
  regions = np.asarray(predict_fn(grid)).reshape(gx.shape)
  num_classes = max(
    len(class_names) if class_names is not None else 0,
    int(regions.max()) + 1,
    int(y.max(initial=-1)) + 1,
  )
  names = [str(c) for c in (class_names or range(num_classes))]
  colours = class_colours(num_classes)
  fig, ax = plt.subplots(figsize=(5.6, 5))
  # One level per class, so region k is filled with colours[k] exactly.
  ax.contourf(
    gx,
    gy,
    regions,
    alpha=0.3,
    cmap=ListedColormap(colours),
    levels=np.arange(num_classes + 1) - 0.5,
  )
  ax.scatter(
    x[:, 0],
    x[:, 1],
    c=[colours[k] for k in y],
    s=8,
    edgecolors="k",
    linewidths=0.2,
  )
  ax.legend(
    handles=[
      Line2D(
        [],
        [],
        marker="o",
        linestyle="",
        markerfacecolor=colours[k],
        markeredgecolor="k",
        label=names[k],
      )
      for k in range(num_classes)
    ],
    title="class (point; region: predicted)",
    fontsize=7,
    title_fontsize=7,
    loc="upper left",
    bbox_to_anchor=(1.0, 1.0),
  )
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


#: Where a bar's positive stack and its negative terms stand, around x = i.
_STACK_X, _STACK_WIDTH = -0.12, 0.56
_NEGATIVE_X, _NEGATIVE_WIDTH = 0.3, 0.2


def plot_decomposition_bars(rows: list[dict], path: str) -> str:
  """One stacked bar per (dataset, loss): Bayes, approximation, estimation,
  optimization (the error-decomposition slide), in percent.

  ``rows`` are ``decomposition.decompose`` rows (one per bar). Where R* is
  unknown the bottom segment is "approximation + Bayes". The positive terms
  are stacked from 0; a negative term stands beside that stack, hatched in
  its colour, hanging from the stack's top down to R(f̃_n) (the whisker:
  R(f̃_n) ± its error), so no segment covers another. Every segment carries
  its term as ``gid``.
  """
  plt = _pyplot()
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(rows) + 3), 4.5))
  seen: dict[str, None] = {}  # terms drawn, in order, for the legend
  any_negative = False
  highest = 0.0
  for i, row in enumerate(rows):
    terms = (
      ("bayes", "approximation")
      if row["bayes"] is not None
      else ("approx_plus_bayes",)
    ) + ("estimation", "optimization")
    heights = {term: 100 * row[term] for term in terms}
    top = 0.0
    for term in terms:  # the positive terms, stacked
      if heights[term] >= 0:
        ax.bar(
          i + _STACK_X,
          heights[term],
          width=_STACK_WIDTH,
          bottom=top,
          color=TERM_COLOURS[term],
          hatch="//" if term == "approx_plus_bayes" else None,
          gid=term,
        )
        seen.setdefault(term)
        top += heights[term]
    stack_top = top
    highest = max(highest, stack_top)
    for term in terms:  # each negative one beside it, down from the top
      if heights[term] < 0:
        ax.bar(
          i + _NEGATIVE_X,
          heights[term],
          width=_NEGATIVE_WIDTH,
          bottom=top,
          facecolor="white",
          edgecolor=TERM_COLOURS[term],
          hatch="xx",
          gid=term,
        )
        seen.setdefault(term)
        any_negative = True
        top += heights[term]
    if top != stack_top:  # R(f̃_n) across the stack and the negative terms
      ax.hlines(
        top,
        i + _STACK_X - _STACK_WIDTH / 2,
        i + _NEGATIVE_X + _NEGATIVE_WIDTH / 2,
        colors="k",
        linestyles=":",
        linewidth=0.8,
      )
    ax.errorbar(
      i + _STACK_X,
      100 * row["risk"],
      yerr=100 * row["risk_se"],
      color="k",
      capsize=3,
    )
  ax.set_xticks(range(len(rows)))
  ax.set_xticklabels(
    [f"{r['dataset'].rsplit('/', 1)[-1]}\n{r['loss']}" for r in rows],
    fontsize=7,
  )
  ax.set_ylim(0, 1.06 * highest if highest > 0 else 1)
  ax.set_ylabel("0–1 risk (%)")
  if rows:
    ax.set_title(
      f"error decomposition, n = {rows[0]['n']}, f̃_n: "
      f"{rows[0]['budget']} step(s), surrogate-trained",
      fontsize=8,
    )
  handles = [
    Patch(
      facecolor=TERM_COLOURS[t],
      label=TERM_LABELS[t],
      hatch="//" if t == "approx_plus_bayes" else None,
    )
    for t in TERM_COLOURS
    if t in seen
  ]
  if any_negative:
    handles.append(
      Patch(
        facecolor="white",
        edgecolor="k",
        hatch="xx",
        label="negative term: beside the\nstack, down to R(f̃_n)",
      )
    )
  ax.legend(
    handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0)
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
