"""`make run`: the lecture's worked examples, computed by linear_jax (offline)."""

import numpy as np

import linear_jax as lj
from linear_jax import lecture


def main():
  svm = np.asarray(lj.multiclass_hinge(lecture.CAT_CAR_FROG_SCORES,
                                       lecture.CAT_CAR_FROG_LABELS))
  print("SVM losses (cat, car, frog):", np.round(svm, 2), "mean", round(svm.mean(), 2))
  p = np.asarray(lj.softmax_probabilities(lecture.CAT_CAR_FROG_SCORES[:1]))[0]
  print("softmax probabilities (cat image):", np.round(p, 2))


if __name__ == "__main__":
  main()
