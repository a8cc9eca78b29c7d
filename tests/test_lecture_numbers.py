"""The lecture's own worked numbers, computed by the library."""

import numpy as np
import pytest

import linear_jax as lj
from linear_jax import lecture

pytestmark = pytest.mark.usefixtures("x64")  # every test in float64


def test_cat_car_frog_svm_losses():
  losses = np.asarray(
    lj.multiclass_hinge(
      lecture.CAT_CAR_FROG_SCORES, lecture.CAT_CAR_FROG_LABELS
    )
  )
  # cat: max(0, 5.1-3.2+1) + max(0, -1.7-3.2+1) = 2.9; car: 0; frog: 12.9.
  np.testing.assert_allclose(losses, [2.9, 0.0, 12.9], atol=1e-12)
  assert round(float(losses.mean()), 2) == 5.27


@pytest.mark.slow
def test_cat_softmax_probabilities_and_loss():
  scores = lecture.CAT_CAR_FROG_SCORES[:1]
  probs = np.asarray(lj.softmax_probabilities(scores))[0]
  np.testing.assert_array_equal(np.round(probs, 2), [0.13, 0.87, 0.00])
  loss = float(lj.softmax_cross_entropy(scores, np.array([0]))[0])
  assert round(loss, 2) == 2.04


def test_four_pixel_example():
  params = lecture.four_pixel_params()
  scores = np.asarray(lj.linear_scores(params, lecture.FOUR_PIXEL_X))[0]
  np.testing.assert_allclose(scores, [-2.85, 0.86, 0.28], atol=1e-12)
  svm = float(lj.multiclass_hinge(scores[None], lecture.FOUR_PIXEL_LABEL)[0])
  np.testing.assert_allclose(svm, 1.58, atol=1e-12)
  # Natural log: -ln(0.353) = 1.04. The slide's 0.452 is -log10(0.353), the
  # same probability in base-10 logs.
  softmax = float(
    lj.softmax_cross_entropy(scores[None], lecture.FOUR_PIXEL_LABEL)[0]
  )
  assert round(softmax, 2) == 1.04
  p = float(lj.softmax_probabilities(scores[None])[0, 2])
  assert round(p, 3) == 0.353
  assert round(-np.log10(p), 3) == 0.452


def test_bias_trick_gives_identical_scores():
  params = lecture.four_pixel_params()
  x = lecture.FOUR_PIXEL_X
  folded = lj.fold_bias(params)
  assert folded["W"].shape == (5, 3) and "b" not in folded
  x1 = lj.add_bias_column(x)
  np.testing.assert_array_equal(np.asarray(x1)[:, -1], [1.0])
  np.testing.assert_allclose(
    lj.linear_scores(folded, x1),
    lj.linear_scores(params, x),
    rtol=0,
    atol=1e-13,
  )
  back = lj.unfold_bias(folded)
  np.testing.assert_array_equal(back["W"], params["W"])
  np.testing.assert_array_equal(back["b"], params["b"])
  np.testing.assert_array_equal(lj.drop_bias_column(x1), x)
