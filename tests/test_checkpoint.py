"""``train.checkpoint``: atomic, NaN-refusing, and every unreadable file is
one ``LinearJaxError`` line.
"""

import numpy as np
import pytest

import linear_jax as lj
from linear_jax.train import checkpoint


def test_refuses_nan_and_survives_a_killed_write(tmp_path, monkeypatch):
  path = str(tmp_path / "checkpoint.npz")
  state = {"W": np.ones((2, 2), np.float32)}
  checkpoint.save(path, state=state, metadata={"epoch": 1})
  with pytest.raises(lj.LinearJaxError, match="NaN"):
    checkpoint.save(path, state={"W": np.full((2, 2), np.nan)}, metadata={})
  # Only parameters must be finite: an optimizer state may hold inf.
  from linear_jax.train import epoch as epoch_lib  # pylint: disable=g-import-not-at-top

  good = epoch_lib.TrainState(
    {"W": np.ones((2, 2))},
    (np.float32(np.inf),),
    np.zeros(2, np.uint32),
    np.int32(0),
  )
  checkpoint.save(str(tmp_path / "lbfgs.npz"), state=good, metadata={})
  with pytest.raises(lj.LinearJaxError, match="NaN"):
    checkpoint.save(
      str(tmp_path / "bad.npz"),
      state=good,
      metadata={},
      best_params={"W": np.full((2, 2), np.inf)},
    )
  (tmp_path / "lbfgs.npz").unlink()

  def killed(f, **arrays):
    f.write(b"partial garbage")
    raise KeyboardInterrupt

  monkeypatch.setattr(np, "savez", killed)
  with pytest.raises(KeyboardInterrupt):
    checkpoint.save(path, state={"W": np.zeros((2, 2))}, metadata={})
  monkeypatch.undo()
  loaded, _, _, meta = checkpoint.load(path, state)
  np.testing.assert_array_equal(loaded["W"], 1.0)
  assert meta["epoch"] == 1
  assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_flipped_byte_is_one_line(tmp_path):
  path = tmp_path / "checkpoint.npz"
  state = {"W": np.arange(4096, dtype=np.float32).reshape(64, 64)}
  checkpoint.save(str(path), state=state, metadata={"epoch": 1})
  data = bytearray(path.read_bytes())
  data[len(data) // 3] ^= 0xFF  # inside the stored W array
  path.write_bytes(bytes(data))
  with pytest.raises(lj.LinearJaxError, match="cannot read checkpoint") as e:
    checkpoint.load(str(path), state)
  assert "\n" not in str(e.value)


def test_other_structure_is_refused_before_unflattening(tmp_path):
  path = str(tmp_path / "checkpoint.npz")
  checkpoint.save(
    path, state={"W": np.ones((2, 2)), "b": np.ones(2)}, metadata={}
  )
  with pytest.raises(lj.LinearJaxError, match="does not fit"):
    checkpoint.load(
      path, {"W": np.ones((2, 2)), "b": np.ones(2), "m": np.ones(2)}
    )
  with pytest.raises(lj.LinearJaxError, match="does not fit"):
    checkpoint.load(path, {"W": np.ones((3, 2)), "b": np.ones(2)})


def test_missing_and_foreign_files(tmp_path):
  with pytest.raises(lj.LinearJaxError, match="no checkpoint"):
    checkpoint.load_metadata(str(tmp_path / "none.npz"))
  (tmp_path / "foreign.npz").write_bytes(b"not a zip file at all")
  with pytest.raises(lj.LinearJaxError, match="cannot read checkpoint"):
    checkpoint.load_metadata(str(tmp_path / "foreign.npz"))
