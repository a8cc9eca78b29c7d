"""The lecture's worked examples, as data (used by tests and ``make run``)."""

import numpy as np

#: Scores of the cat, car and frog images (rows), for classes cat/car/frog.
CAT_CAR_FROG_SCORES = np.array(
  [[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]
)
#: Their labels: cat, car, frog (0, 1, 2).
CAT_CAR_FROG_LABELS = np.array([0, 1, 2])

#: The 4-pixel, 3-class example; the slide writes W as [C, D] = 3×4, so in
#: linear_jax's [D, C] layout it is the transpose.
FOUR_PIXEL_W_SLIDE = np.array(
  [[0.01, -0.05, 0.1, 0.05], [0.7, 0.2, 0.05, 0.16], [0.0, -0.45, -0.2, 0.03]]
)
#: The 4-pixel image x ``[1, 4]``.
FOUR_PIXEL_X = np.array([[-15.0, 22.0, -44.0, 56.0]])
#: Its bias b ``[3]``.
FOUR_PIXEL_B = np.array([0.0, 0.2, -0.3])
#: Its label y ``[1]``: class 2.
FOUR_PIXEL_LABEL = np.array([2])


def four_pixel_params():
  """The 4-pixel example's ``{"W": [4, 3], "b": [3]}``; W is the slide's Wᵀ."""
  return {"W": FOUR_PIXEL_W_SLIDE.T, "b": FOUR_PIXEL_B}
