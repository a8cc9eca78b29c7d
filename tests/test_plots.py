"""linear_jax.plots: what a reader sees, checked on the rendered pixels; the
templates' rescaling; figures written atomically.
"""

import os

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from linear_jax import plots


@pytest.fixture
def rendered(monkeypatch):
  """Each figure the plots write, rendered: ``[(figure, RGBA pixels)]``."""
  figures = []

  def keep(fig, path, *, dpi=100):
    fig.set_dpi(dpi)
    fig.canvas.draw()
    figures.append((fig, np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255))
    return path

  monkeypatch.setattr(plots, "save_figure", keep)
  return figures


def pixel(ax, pixels, x, y):
  """The RGB pixel at data point (x, y) of ``ax``."""
  px, py = ax.transData.transform((x, y))
  return pixels[int(round(pixels.shape[0] - py)), int(round(px))]


def quadrant(points):
  """Class of a point: 0..3 by the signs of its two coordinates."""
  points = np.asarray(points)
  return (points[:, 0] > 0).astype(int) + 2 * (points[:, 1] > 0)


def test_region_colours_match_the_point_colours(rendered, tmp_path):
  """Correctly classified points sit on a region of their own colour (the
  region is the point colour at 30 % over white), and a legend names them.
  """
  rng = np.random.default_rng(0)
  centres = np.array([[-2, -2], [2, -2], [-2, 2], [2, 2]], float)
  y = np.repeat(np.arange(4), 25)
  x = centres[y] + 0.2 * rng.normal(size=(100, 2))
  names = ("ant", "bee", "cow", "dog")
  plots.plot_decision_regions(
    quadrant, x, y, str(tmp_path / "r.png"), class_names=names
  )
  ((fig, pixels),) = rendered
  ax = fig.axes[0]
  points = ax.collections[-1].get_facecolors()[:, :3]
  for k, (cx, cy) in enumerate(centres):
    point = points[np.flatnonzero(y == k)[0]]
    region = pixel(ax, pixels, cx / 3, cy / 3)  # inside, away from points
    np.testing.assert_allclose(region, 0.7 + 0.3 * point, atol=0.03)
  legend = ax.get_legend()
  assert legend is not None
  assert [t.get_text() for t in legend.get_texts()] == list(names)


def term_pixels(ax, pixels, i, colour):
  """How many pixels of bar ``i``'s column have ``colour``."""
  (x0, _), (x1, _) = ax.transData.transform([(i - 0.5, 0), (i + 0.5, 0)])
  column = pixels[:, int(x0) : int(x1)]
  return int((np.abs(column - to_rgb(colour)).max(-1) < 0.15).sum())


def test_every_term_of_the_decomposition_is_visible(rendered, tmp_path):
  """A negative term (parity/svm's estimation, −10.5 points) was drawn
  under the optimization bar above it; every term must show.
  """
  rows = [
    dict(dataset="synthetic/parity", loss="svm", n=64, budget=1, bayes=0.0,
         approximation=0.502, estimation=-0.105, optimization=0.104,
         risk=0.50, risk_se=0.05),
    dict(dataset="synthetic/ring", loss="softmax", n=64, budget=1, bayes=0.0,
         approximation=0.50, estimation=0.03, optimization=-0.03, risk=0.50,
         risk_se=0.01),
    dict(dataset="digits", loss="svm", n=64, budget=1, bayes=None,
         approx_plus_bayes=0.08, estimation=0.04, optimization=0.02,
         risk=0.14, risk_se=0.01),
  ]  # fmt: skip
  plots.plot_decomposition_bars(rows, str(tmp_path / "d.png"))
  ((fig, pixels),) = rendered
  ax = fig.axes[0]
  for i, row in enumerate(rows):
    for term, colour in plots.TERM_COLOURS.items():
      if abs(row.get(term) or 0) >= 0.02:
        seen = term_pixels(ax, pixels, i, colour)
        assert seen >= 20, (row["dataset"], term, seen)
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert any("negative term" in label for label in labels)


def test_weight_templates_share_one_rescaling_and_drop_the_bias_row():
  rng = np.random.default_rng(0)
  image_shape, c = (2, 3, 1), 4
  w = rng.normal(size=(6, c))
  with_bias = np.vstack([w, [100.0, -100.0, 50.0, 0.0]])  # the bias trick
  images = plots.weight_templates(with_bias, image_shape)
  assert images.shape == (c, 2, 3, 1)
  # One min-max rescaling over all classes; the bias row takes no part.
  want = (w - w.min()) / (w.max() - w.min())
  for k in range(c):
    np.testing.assert_allclose(images[k].reshape(-1), want[:, k], rtol=1e-12)
  assert images.min() == 0.0 and images.max() == 1.0


def test_plot_curves_writes_one_png_and_no_temporaries(tmp_path):
  history = [
    {
      "epoch": e,
      "data_loss": 1.0 / e,
      "reg_loss": 0.1,
      "train_accuracy": 0.5 + 0.1 * e,
      "val_accuracy": 0.5 + 0.05 * e,
    }
    for e in (1, 2, 3)
  ]
  path = str(tmp_path / "curves.png")
  assert plots.plot_curves(history, path, title="t") == path
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.listdir(tmp_path) == ["curves.png"]
