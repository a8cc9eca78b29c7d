"""The decoded-image cache: written atomically, verified on load, rebuilt
(with one warning line) whenever what is on disk differs from what was
written.
"""

import json
import logging
import os
import stat

import numpy as np
import pytest
from PIL import Image

from linear_jax import data
from linear_jax.data import cache, decode, folder_source

CLASSES = ("ant", "bee", "cow")


def write_pngs(root, n=4):
  """``root/{train,test}/<class>/NN.png``: lossless, so pixels are exact."""
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for name in CLASSES:
      (root / split / name).mkdir(parents=True)
      for i in range(n):
        Image.fromarray(rng.integers(0, 256, (4, 3, 3)).astype(np.uint8)).save(
          root / split / name / f"{i:02d}.png"
        )
  return root


@pytest.fixture
def loaded(tmp_path, monkeypatch):
  """``(folder, cache entry, first RawData)`` after one load that filled it."""
  monkeypatch.setenv("LINEAR_JAX_CACHE", str(tmp_path / "cache"))
  root = write_pngs(tmp_path / "images")
  raw = folder_source.load_folder(root)
  (entry,) = (tmp_path / "cache").iterdir()
  return root, entry, raw


def rewrite_array(entry, name, change):
  array = np.load(entry / f"{name}.npy")
  np.save(entry / f"{name}.npy", change(array), allow_pickle=False)


def flip_last_byte(entry):
  path = entry / "x_train.npy"
  content = bytearray(path.read_bytes())
  content[-1] ^= 0x01  # same size, one pixel one grey level off
  path.write_bytes(bytes(content))


def reorder_class_names(entry):
  meta = json.loads((entry / "meta.json").read_text())
  meta["class_names"] = meta["class_names"][::-1]
  (entry / "meta.json").write_text(json.dumps(meta))


CORRUPTIONS = {
  "same-size byte edit": flip_last_byte,
  "inverted labels": lambda e: rewrite_array(e, "y_train", lambda y: 2 - y),
  "reordered class names": reorder_class_names,
  "float64 x_train": lambda e: rewrite_array(
    e, "x_train", lambda x: x.astype(np.float64)
  ),
  "zero-byte y_test": lambda e: (e / "y_test.npy").write_bytes(b""),
  "missing x_test": lambda e: (e / "x_test.npy").unlink(),
  "meta.json not JSON": lambda e: (e / "meta.json").write_text("{"),
  "label out of range": lambda e: rewrite_array(
    e, "y_test", lambda y: np.where(np.arange(len(y)) == 0, 7, y)
  ),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS)
def test_damaged_entry_is_rebuilt_with_one_warning(loaded, corrupt, caplog):
  root, entry, first = loaded
  corrupt(entry)
  with caplog.at_level(logging.WARNING):
    again = folder_source.load_folder(root)
  warnings = [
    r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
  ]
  assert len(warnings) == 1 and "\n" not in warnings[0]
  assert f"cache entry {entry} is damaged" in warnings[0]
  assert warnings[0].endswith("rebuilding it")
  assert again.class_names == CLASSES
  for split in ("train", "test"):
    for a, b in zip(again.splits[split], first.splits[split], strict=True):
      assert a.dtype == b.dtype
      np.testing.assert_array_equal(a, b)
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # repaired: read as is, silently
    folder_source.load_folder(root)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_entry_with_consistent_digests_but_labels_out_of_range_is_rebuilt(
  loaded, caplog, monkeypatch
):
  """Even an entry whose digests match is not trusted with labels outside
  [0, C): it is rebuilt, never reported to the user as their labels.
  """
  root, entry, first = loaded
  arrays, meta = cache.load_entry(entry)
  arrays = {k: np.array(v) for k, v in arrays.items()}
  arrays["y_train"][0] = 5
  del meta["arrays"], meta["digest"]
  cache.save_entry(entry, arrays, meta)
  with caplog.at_level(logging.WARNING):
    ds = data.load_dataset(f"folder:{root}", validation_size=1)
  (warning,) = [
    r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
  ]
  assert "labels of split train leave [0, 3)" in warning
  assert ds.y_train.max() < 3


def test_meta_records_shape_dtype_and_digest_of_every_array(loaded):
  _, entry, _ = loaded
  meta = json.loads((entry / "meta.json").read_text())
  assert sorted(meta["arrays"]) == ["x_test", "x_train", "y_test", "y_train"]
  x = np.load(entry / "x_train.npy")
  assert meta["arrays"]["x_train"] == {
    "shape": [12, 4, 3, 3],
    "dtype": "|u1",
    "digest": cache.array_digest(x),
  }
  assert cache.array_digest(x) != cache.array_digest(x[::-1])


def test_meta_is_written_last_and_an_entry_without_it_is_ignored(
  loaded, monkeypatch
):
  root, entry, _ = loaded
  (entry / "meta.json").unlink()
  calls = []
  original = decode.decode_image
  monkeypatch.setattr(
    decode, "decode_image", lambda *a: calls.append(a) or original(*a)
  )
  folder_source.load_folder(root)
  assert calls and (entry / "meta.json").is_file()

  order = []
  real_write = cache.io.atomic_write
  monkeypatch.setattr(
    cache.io,
    "atomic_write",
    lambda path, d: order.append(os.path.basename(path)) or real_write(path, d),
  )
  (entry / "meta.json").unlink()
  folder_source.load_folder(root)
  assert order[-1] == "meta.json" and len(order) == 5


@pytest.mark.slow
def test_cache_files_follow_the_umask_and_leave_no_temporaries(
  tmp_path, monkeypatch
):
  monkeypatch.setenv("LINEAR_JAX_CACHE", str(tmp_path / "cache"))
  root = write_pngs(tmp_path / "images", n=2)
  # linear_jax.io reads the umask once, at import: a process started under
  # umask 027 fills the cache.
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  code = (
    "from linear_jax.data import folder_source; "
    f"folder_source.load_folder({str(root)!r})"
  )
  subprocess.run(
    ["sh", "-c", 'umask 027 && exec "$0" -c "$1"', sys.executable, code],
    check=True,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  (entry,) = (tmp_path / "cache").iterdir()
  names = sorted(os.listdir(entry))
  assert names == [
    "meta.json",
    "x_test.npy",
    "x_train.npy",
    "y_test.npy",
    "y_train.npy",
  ]
  for name in names:
    assert stat.S_IMODE(os.stat(entry / name).st_mode) == 0o640
