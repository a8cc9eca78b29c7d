"""Bad input gives one clear error that names the problem."""

import numpy as np
import pytest

import linear_jax as lj

S = np.zeros((3, 4), np.float32)
Y = np.array([0, 1, 3])
P = {"W": np.zeros((2, 4), np.float32), "b": np.zeros(4, np.float32)}
X = np.zeros((3, 2), np.float32)


def one_line(excinfo):
  msg = str(excinfo.value)
  assert "\n" not in msg
  return msg


@pytest.mark.parametrize("name", sorted(lj.LOSSES))
def test_labels_out_of_range(name):
  with pytest.raises(lj.LinearJaxError) as e:
    lj.LOSSES[name](S, np.array([0, 1, 4]))
  assert "[0, 4)" in one_line(e) and "[0, 4]" in one_line(e)
  with pytest.raises(lj.LinearJaxError):
    lj.LOSSES[name](S, np.array([-1, 1, 2]))


@pytest.mark.parametrize("name", sorted(lj.LOSSES))
def test_float_labels(name):
  with pytest.raises(lj.LinearJaxError) as e:
    lj.LOSSES[name](S, Y.astype(np.float32))
  assert "integers" in one_line(e)


def test_label_batch_mismatch():
  with pytest.raises(lj.LinearJaxError) as e:
    lj.multiclass_hinge(S, np.array([0, 1]))
  assert "does not match" in one_line(e)
  with pytest.raises(lj.LinearJaxError):
    lj.objective(P, X, np.array([0, 1]))


def test_negative_lambda_and_delta():
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, X, Y, reg_strength=-1.0)
  assert "reg_strength" in one_line(e)
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, X, Y, margin=-0.5)
  assert "margin" in one_line(e)


@pytest.mark.parametrize("eps", [-0.1, 1.5, float("nan")])
def test_label_smoothing_outside_unit_interval(eps):
  with pytest.raises(lj.LinearJaxError) as e:
    lj.softmax_cross_entropy(S, Y, label_smoothing=eps)
  assert "label_smoothing" in one_line(e)


def test_unknown_names_list_valid_ones():
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, X, Y, loss="hinge")
  msg = one_line(e)
  for name in lj.LOSSES:
    assert name in msg
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, X, Y, reg="l3")
  msg = one_line(e)
  assert "did you mean" in msg
  for name in lj.REGULARIZERS:
    assert name in msg


def test_option_the_loss_does_not_take():
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, X, Y, loss="softmax", margin=2.0)
  assert "label_smoothing" in one_line(e)


def test_feature_mismatch():
  with pytest.raises(lj.LinearJaxError) as e:
    lj.objective(P, np.zeros((3, 5)), Y)
  assert "D = 2" in one_line(e)
