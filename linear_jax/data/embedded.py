"""Datasets that ship with the code: no download, the same arrays every time.

The 2-D point sets are the lecture's "hard cases for a linear classifier"
plus one easy case; each draws ``NUM_POINTS`` points ``[N, 2]`` from a fixed
generator seed (the hard cases are samples of the noise-free distributions
in ``distributions``) (so every run sees the same points; ``load_dataset``'s
``seed`` only changes the validation split). Label 1 is the lecture's
"class 1", label 0 its "class 2":

- ``hard_parity``: uniform in [-1, 1]², class 1 when the number of positive
  coordinates is odd (in 2-D: the quadrants' XOR);
- ``hard_ring``: uniform in [-3, 3]², class 1 when 1 ≤ ‖x‖₂ ≤ 2; half the
  points are drawn from each class;
- ``hard_modes``: class 1 from three Gaussian modes (σ = 0.3, centres 1.5
  from the origin, 120° apart), class 2 uniform in [-3, 3]² at least 1.0
  from every centre; half the points each;
- ``blobs``: 4 linearly separable Gaussian blobs (σ = 0.5) centred at
  (±2, ±2).

``digits`` is scikit-learn's 8×8 handwritten digits (1,797 images, pixel
values 0..16, shipped inside scikit-learn, read offline), as uint8
``[N, 8, 8, 1]``.

None of these has a test split of its own: ``from_raw`` carves a fixed 20 %.
"""

from __future__ import annotations

import numpy as np

from linear_jax.data import distributions
from linear_jax.data.dataset import RawData

NUM_POINTS = 2500
_MODE_CENTRES = distributions.MODE_CENTRES


def hard_parity(n: int = NUM_POINTS, seed: int = 1) -> RawData:
  """Class 1 (label 1): an odd number of positive coordinates; ``x [n, 2]``."""
  return _points(distributions.parity(), n, seed)


def hard_ring(n: int = NUM_POINTS, seed: int = 2) -> RawData:
  """Class 1 (label 1): 1 ≤ ‖x‖₂ ≤ 2, class 2 the rest of [-3, 3]²."""
  return _points(distributions.ring(), n, seed)


def hard_modes(n: int = NUM_POINTS, seed: int = 3) -> RawData:
  """Class 1 (label 1): three Gaussian modes; class 2 everywhere else."""
  return _points(distributions.modes(), n, seed)


def _points(
  distribution: distributions.Distribution, n: int, seed: int
) -> RawData:
  """``n`` points of a noise-free lecture distribution as a training split."""
  x, y = distribution.sample(n, seed)
  return RawData({"train": (x, y)}, distribution.class_names, None)


def blobs(n: int = NUM_POINTS, seed: int = 4) -> RawData:
  """4 Gaussian blobs (σ = 0.5) at (±2, ±2), labels 0..3; linearly separable."""
  rng = np.random.default_rng(seed)
  centres = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
  y = rng.integers(0, 4, size=n).astype(np.int32)
  x = (centres[y] + 0.5 * rng.normal(size=(n, 2))).astype(np.float32)
  return RawData({"train": (x, y)}, ("0", "1", "2", "3"), None)


def digits() -> RawData:
  """scikit-learn's 8×8 digits: uint8 ``[1797, 8, 8, 1]`` in 0..16, labels 0..9."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  bunch = datasets.load_digits()
  x = bunch.images.astype(np.uint8)[..., None]
  y = bunch.target.astype(np.int32)
  names = tuple(str(c) for c in bunch.target_names)
  return RawData({"train": (x, y)}, names, (8, 8, 1))
