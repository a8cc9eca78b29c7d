"""A sweep's outputs: ``results.csv``, ``results.md``, heatmaps, a digest.

``results.csv`` has one row per configuration, in grid order, with the
columns ``COLUMNS``. Hyperparameters are written in full (``repr``), the
float32 metrics as the shortest decimal that reads back to the same float32
(``float32_value``: 0.9975, not 0.9975000023841858); an empty cell
means "not applicable": ``margin`` for losses without Δ, metrics of a
configuration that diverged in its first epoch, and ``test_accuracy`` for
every row but the selected best of each loss (only those are evaluated on
test, once). ``digest`` hashes that text, so processes (or reruns) can check
that they agree on every number.

Heatmaps (``heatmap_<loss>.png``, or ``heatmap_<loss>_<reg>.png`` when the
sweep has several regularizers): validation accuracy over learning rate (x)
and λ (y), as in the course's hyperparameter search plot. Where a cell has
several configurations (several Δ or seeds) it shows the best of them;
cells whose configurations all diverged read "div"; the selected best is
outlined.
"""

from __future__ import annotations

import csv
import hashlib
import io as std_io
import math
import os
import textwrap

import numpy as np

from linear_jax import io, plots

COLUMNS = (
  "loss",
  "reg",
  "reg_strength",
  "learning_rate",
  "margin",
  "seed",
  "val_accuracy",
  "train_accuracy",
  "data_loss",
  "reg_loss",
  "diverged",
  "diverged_epoch",
  "test_accuracy",
)


def csv_cell(value) -> str:
  """A CSV cell: "" for None and non-finite floats, floats in full (repr)."""
  if value is None:
    return ""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (float, np.floating)):
    return "" if not math.isfinite(value) else repr(float(value))
  return str(value)


def float32_value(value) -> float | None:
  """A float32 metric as the shortest decimal that reads back to it (0.9975,
  not 0.9975000023841858); None stays None, NaN stays NaN.
  """
  if value is None:
    return None
  return float(str(np.float32(value)))


def result_rows(result, test_accuracy: dict[int, float]) -> list[dict]:
  """One dict per configuration (keys ``COLUMNS``), in grid order.

  Args:
    result: a ``SweepResult``.
    test_accuracy: configuration index -> test accuracy (the selected ones).
  """
  rows = []
  for p in result.points:
    i = p.index
    epoch = int(result.diverged_epoch[i])
    rows.append(
      {
        "loss": p.loss,
        "reg": p.reg,
        "reg_strength": p.reg_strength,
        "learning_rate": p.learning_rate,
        "margin": p.margin,
        "seed": p.seed,
        "val_accuracy": float32_value(result.val_accuracy[i]),
        "train_accuracy": float32_value(result.train_accuracy[i]),
        "data_loss": float32_value(result.data_loss[i]),
        "reg_loss": float32_value(result.reg_loss[i]),
        "diverged": epoch > 0,
        "diverged_epoch": epoch or None,
        "test_accuracy": float32_value(test_accuracy.get(i)),
      }
    )
  return rows


def csv_text(rows: list[dict]) -> str:
  """``results.csv``: the header ``COLUMNS``, then one line per row."""
  out = std_io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(COLUMNS)
  for row in rows:
    writer.writerow([csv_cell(row[c]) for c in COLUMNS])
  return out.getvalue()


def history_csv_text(result) -> str:
  """Every configuration's metrics after every epoch (``result.history``):
  columns ``index, epoch`` and the metrics, float32 values written as in
  ``results.csv``; empty after a configuration diverged.
  """
  names = sorted(result.history)
  out = std_io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(("index", "epoch") + tuple(names))
  k, epochs = result.history[names[0]].shape
  for i in range(k):
    for e in range(epochs):
      writer.writerow(
        [i, e + 1]
        + [csv_cell(float32_value(result.history[n][i, e])) for n in names]
      )
  return out.getvalue()


def digest(rows: list[dict]) -> str:
  """sha256 of ``csv_text(rows)``: equal on processes that agree exactly."""
  return hashlib.sha256(csv_text(rows).encode()).hexdigest()


def write_csv(path: str, rows: list[dict]) -> str:
  """Atomically writes ``csv_text(rows)`` to ``path``; returns ``path``."""
  io.atomic_write(path, csv_text(rows))
  return path


def table_number(value, spec: str) -> str:
  """``format(value, spec)`` for a markdown cell; "–" for None or non-finite."""
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "–"
  return format(value, spec)


def _md_row(row: dict, bold: bool = False) -> str:
  cells = [
    row["loss"],
    row["reg"],
    table_number(row["reg_strength"], "g"),
    table_number(row["learning_rate"], "g"),
    table_number(row["margin"], "g"),
    str(row["seed"]),
    table_number(row["val_accuracy"], ".4f"),
    table_number(row["train_accuracy"], ".4f"),
    f"epoch {row['diverged_epoch']}" if row["diverged"] else "",
    table_number(row["test_accuracy"], ".4f"),
  ]
  if bold:
    cells = [f"**{c}**" if c else c for c in cells]
  return "| " + " | ".join(cells) + " |"


def markdown(rows: list[dict], best: dict, caption: str) -> str:
  """The best per loss, then every configuration by loss (grid order) and
  validation accuracy (best first, diverged last); the selected rows bold.
  """
  header = (
    "| loss | reg | λ | learning rate | Δ | seed | val acc | train acc "
    "| diverged | test acc |\n|" + "---|" * 10
  )
  chosen = set(best.values())
  lines = [
    caption,
    "",
    "## Best per loss (selected on validation, evaluated once on test)",
    "",
    header,
  ]
  lines += [_md_row(rows[i]) for i in best.values()]
  losses = list(dict.fromkeys(r["loss"] for r in rows))
  order = sorted(
    range(len(rows)),
    key=lambda i: (
      losses.index(rows[i]["loss"]),
      rows[i]["diverged"],
      -(
        rows[i]["val_accuracy"]
        if math.isfinite(rows[i]["val_accuracy"])
        else -1.0
      ),
      i,
    ),
  )
  lines += ["", f"## All {len(rows)} configurations", "", header]
  lines += [_md_row(rows[i], bold=i in chosen) for i in order]
  return "\n".join(lines) + "\n"


def heatmap_grid(rows: list[dict], loss: str, reg: str):
  """``(λ values, learning rates, accuracy [len(λ), len(lr)])`` for one pair.

  A cell holds the best validation accuracy over its non-diverged
  configurations (other Δ, seeds), NaN if all diverged.
  """
  mine = [r for r in rows if r["loss"] == loss and r["reg"] == reg]
  lams = sorted({r["reg_strength"] for r in mine})
  lrs = sorted({r["learning_rate"] for r in mine})
  acc = np.full((len(lams), len(lrs)), np.nan)
  for r in mine:
    if r["diverged"]:
      continue
    cell = (lams.index(r["reg_strength"]), lrs.index(r["learning_rate"]))
    acc[cell] = np.fmax(acc[cell], r["val_accuracy"])
  return lams, lrs, acc


def plot_heatmap(
  rows: list[dict],
  loss: str,
  reg: str,
  best: int | None,
  path: str,
  caption: str = "",
) -> str:
  """Validation accuracy over (learning rate, λ) as a PNG (module docstring)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  lams, lrs, acc = heatmap_grid(rows, loss, reg)
  width = 2.4 + 0.9 * len(lrs)
  caption = textwrap.fill(caption, int(width * 16)) if caption else ""
  foot = 0.13 * (caption.count("\n") + 1) if caption else 0.0
  height = 2.2 + 0.6 * len(lams) + foot
  fig, ax = plt.subplots(figsize=(width, height))
  image = ax.imshow(
    np.ma.masked_invalid(acc), origin="lower", cmap="viridis", aspect="auto"
  )
  ax.set_facecolor("0.85")
  fig.colorbar(image, ax=ax, label="validation accuracy")
  for (y, x), value in np.ndenumerate(acc):
    text = "div" if np.isnan(value) else f"{value:.3f}"
    ax.text(
      x,
      y,
      text,
      ha="center",
      va="center",
      fontsize=7,
      color="black" if np.isnan(value) or value > np.nanmean(acc) else "white",
    )
  if best is not None:
    r = rows[best]
    x, y = lrs.index(r["learning_rate"]), lams.index(r["reg_strength"])
    ax.add_patch(
      matplotlib.patches.Rectangle(
        (x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2
      )
    )
  ax.set_xticks(range(len(lrs)), [f"{v:.0e}" for v in lrs], rotation=45)
  ax.set_yticks(range(len(lams)), [f"{v:.0e}" if v else "0" for v in lams])
  ax.set(
    xlabel="learning rate",
    ylabel="λ (reg_strength)",
    title=f"{loss} / {reg}: validation accuracy",
  )
  if caption:
    fig.text(0.01, 0.01, caption, fontsize=6, va="bottom")
  fig.tight_layout(rect=(0, (foot + 0.05) / height if caption else 0, 1, 1))
  return plots.save_figure(fig, path)


def heatmap_name(loss: str, reg: str, regs) -> str:
  """``heatmap_<loss>.png``, with ``_<reg>`` when ``regs`` has several."""
  return (
    f"heatmap_{loss}.png" if len(regs) == 1 else f"heatmap_{loss}_{reg}.png"
  )


def plot_heatmaps(
  rows: list[dict], best: dict, workdir: str, caption: str = ""
) -> list[str]:
  """One heatmap per (loss, reg) in ``workdir``; returns the paths."""
  paths = []
  for loss, reg, name in heatmap_names(rows):
    chosen = best.get(loss)
    if chosen is not None and rows[chosen]["reg"] != reg:
      chosen = None
    paths.append(
      plot_heatmap(
        rows, loss, reg, chosen, os.path.join(workdir, name), caption
      )
    )
  return paths


def heatmap_names(rows: list[dict]) -> list[tuple[str, str, str]]:
  """``(loss, reg, file name)`` of every heatmap, in grid order."""
  losses = list(dict.fromkeys(r["loss"] for r in rows))
  regs = list(dict.fromkeys(r["reg"] for r in rows))
  return [
    (loss, reg, heatmap_name(loss, reg, regs))
    for loss in losses
    for reg in regs
  ]
