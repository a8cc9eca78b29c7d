"""linear_jax.plots: weights as templates, and figures written atomically."""

import os

import numpy as np

from linear_jax import plots


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
