"""Image folders and .tar.gz archives: decoding, cache reuse and invalidation, errors."""

import io
import logging
import os
import tarfile

import numpy as np
import pytest
from conftest import run_binary
from PIL import Image

from linear_jax import LinearJaxError, data
from linear_jax.data import decode, folder_source

CLASSES = ("cat", "dog", "frog")
SHAPE = (6, 5, 3)


def pixels(split, label, i):
  """A distinct, smooth RGB image ``[6, 5, 3]`` per file (JPEG keeps it close)."""
  seed = (
    {"train": 0, "test": 1, "validation": 2}[split] * 1000 + label * 100 + i
  )
  colour = np.random.default_rng(seed).integers(0, 200, size=3)
  ramp = np.add.outer(np.arange(SHAPE[0]), np.arange(SHAPE[1]))[..., None]
  return (colour + 4 * ramp).astype(np.uint8)


def write_folder(root, splits=(("train", 4), ("test", 2)), classes=CLASSES):
  """``root/split/class/NN.{png,jpg}``: even files PNG (lossless), odd JPEG."""
  for split, n in splits:
    for label, name in enumerate(classes):
      folder = root / split / name
      folder.mkdir(parents=True, exist_ok=True)
      for i in range(n):
        suffix = "png" if i % 2 == 0 else "jpg"
        Image.fromarray(pixels(split, label, i)).save(
          folder / f"{i:02d}.{suffix}", quality=95
        )
  return root


def make_archive(folder, archive, top="mini"):
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(folder, arcname=top)
  return archive


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
  path = tmp_path / "cache"
  monkeypatch.setenv("LINEAR_JAX_CACHE", str(path))
  return path


def test_folder_decodes_png_exactly_and_jpeg_closely(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images")
  raw = folder_source.load_folder(root)
  assert raw.class_names == CLASSES and raw.image_shape == SHAPE
  x, y = raw.splits["train"]
  assert x.dtype == np.uint8 and x.shape == (12,) + SHAPE
  np.testing.assert_array_equal(y, np.repeat([0, 1, 2], 4))
  for row, (label, i) in enumerate(
    (line, i) for line in range(3) for i in range(4)
  ):
    expected = pixels("train", label, i)
    if i % 2 == 0:  # PNG: lossless
      np.testing.assert_array_equal(x[row], expected)
    else:  # JPEG: lossy, but close
      diff = np.abs(x[row].astype(int) - expected)
      assert diff.mean() < 3 and diff.max() < 20
  assert raw.splits["test"][0].shape == (6,) + SHAPE
  assert set(os.listdir(cache_dir)) and all(
    n.startswith("folder-images-") for n in os.listdir(cache_dir)
  )


def test_load_dataset_on_folder(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", splits=(("train", 10), ("test", 2)))
  ds = data.load_dataset(f"folder:{root}", validation_size=6, seed=0)
  assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == (
    (24, 90),
    (6, 90),
    (6, 90),
  )
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.num_classes == 3 and ds.class_names == CLASSES
  assert ds.image_shape == SHAPE and ds.name == f"folder:{root}"
  assert sorted(np.bincount(np.concatenate([ds.y_train, ds.y_val]))) == [10] * 3


def test_grayscale_and_validation_folder(tmp_path, cache_dir):
  root = tmp_path / "gray"
  for split in ("train", "val", "test"):
    for name in ("a", "b"):
      (root / split / name).mkdir(parents=True)
      Image.fromarray(np.full((3, 3), 7 if name == "a" else 9, np.uint8)).save(
        root / split / name / "x.png"
      )
  raw = folder_source.load_folder(root)
  assert set(raw.splits) == {"train", "validation", "test"}
  assert raw.image_shape == (3, 3, 1)
  np.testing.assert_array_equal(raw.splits["validation"][0][:, 0, 0, 0], [7, 9])
  ds = data.load_dataset(f"folder:{root}", subtract_mean=False)
  assert (len(ds.y_train), len(ds.y_val)) == (2, 2)  # own validation split


def test_archive_under_top_folder_matches_folder(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images")
  archive = make_archive(root, tmp_path / "mini.tar.gz")
  from_folder = folder_source.load_folder(root)
  from_archive = folder_source.load_folder(archive)
  assert from_archive.class_names == CLASSES
  for split in ("train", "test"):
    for a, b in zip(
      from_folder.splits[split], from_archive.splits[split], strict=True
    ):
      np.testing.assert_array_equal(a, b)
  ds = data.load_dataset(f"folder:{archive}")
  assert ds.num_features == 90 and len(ds.y_test) == 6


def test_second_load_reads_the_cache(tmp_path, cache_dir, monkeypatch):
  root = write_folder(tmp_path / "images")
  archive = make_archive(root, tmp_path / "mini.tgz")
  first = {p: folder_source.load_folder(p) for p in (root, archive)}

  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded again instead of reading the cache")

  monkeypatch.setattr(decode, "decode_image", no_decoding)
  for path, raw in first.items():
    again = folder_source.load_folder(path)
    np.testing.assert_array_equal(
      again.splits["train"][0], raw.splits["train"][0]
    )
    assert again.class_names == CLASSES


def test_cache_is_invalidated_when_a_file_is_added(
  tmp_path, cache_dir, monkeypatch
):
  root = write_folder(tmp_path / "images")
  assert len(folder_source.load_folder(root).splits["train"][1]) == 12
  Image.fromarray(pixels("train", 1, 99)).save(root / "train/dog/99.png")
  calls = []
  original = decode.decode_image
  monkeypatch.setattr(
    decode, "decode_image", lambda *a: calls.append(a) or original(*a)
  )
  raw = folder_source.load_folder(root)
  x, y = raw.splits["train"]
  assert len(y) == 13 and np.bincount(y).tolist() == [4, 5, 4]
  np.testing.assert_array_equal(x[8], pixels("train", 1, 99))  # sorted last
  assert len(calls) > 13  # everything decoded again


def test_cache_dir_argument_overrides_env(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images")
  own = tmp_path / "own_cache"
  data.load_dataset(f"folder:{root}", data_dir=own)
  assert len(os.listdir(own)) == 1 and not cache_dir.exists()


# --- bad input: one line naming the problem ---------------------------------


def one_line_error(path, **kwargs):
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset(f"folder:{path}", **kwargs)
  message = str(e.value)
  assert "\n" not in message
  return message


def test_missing_folder(tmp_path, cache_dir):
  assert "does not exist" in one_line_error(tmp_path / "nowhere")


def test_empty_folder(tmp_path, cache_dir):
  (tmp_path / "empty").mkdir()
  assert "is empty" in one_line_error(tmp_path / "empty")


def test_split_without_images(tmp_path, cache_dir):
  (tmp_path / "f/train/cat").mkdir(parents=True)
  (tmp_path / "f/train/cat/notes.txt").write_text("no images here")
  assert "holds no .jpg/.jpeg/.png images" in one_line_error(tmp_path / "f")


def test_no_train_split(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", splits=(("test", 1),))
  message = one_line_error(root)
  assert "no 'train' split" in message and "['test']" in message


def test_class_folders_differ_between_splits(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", splits=(("train", 1),))
  write_folder(root, splits=(("test", 1),), classes=("bird", "cat", "dog"))
  message = one_line_error(root)
  assert "class folders differ" in message
  assert "test has ['bird'], which train lacks" in message


def test_a_test_split_may_lack_training_classes(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", splits=(("train", 4),))
  write_folder(root, splits=(("test", 2),), classes=("cat", "frog"))
  raw = folder_source.load_folder(root)
  assert raw.class_names == CLASSES
  np.testing.assert_array_equal(raw.splits["test"][1], [0, 0, 2, 2])


def warnings_of(caplog):
  return [
    r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
  ]


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_corrupt_images_are_skipped_with_one_warning(
  tmp_path, cache_dir, content, caplog
):
  """Users of tfds expect the bad files named; one bad file no longer stops
  the run. The warning counts them, names the first few, and never shows
  PIL's ``<_io.BytesIO object at 0x…>``.
  """
  root = write_folder(tmp_path / "images")
  good = (root / "train/cat/01.jpg").read_bytes()
  bad = good[: len(good) // 2] if content == "truncated" else content
  names = ["train/dog/bad.jpg", "train/cat/bad.jpg", "test/frog/bad.png"]
  for name in names:
    (root / name).write_bytes(bad)
  with caplog.at_level(logging.WARNING):
    raw = folder_source.load_folder(root)
  assert [len(raw.splits[s][1]) for s in ("train", "test")] == [12, 6]
  (warning,) = warnings_of(caplog)
  assert "skipped 3 unreadable image(s) of 21" in warning
  for name in names:
    assert str(root / name) in warning
  assert "BytesIO" not in warning
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # from the cache: still said
    again = folder_source.load_folder(root)
  np.testing.assert_array_equal(
    again.splits["train"][0], raw.splits["train"][0]
  )
  (warning,) = warnings_of(caplog)
  assert "3 unreadable image(s) were skipped" in warning
  # Predictions are matched to images by position: there they are refused.
  with pytest.raises(LinearJaxError, match="has unreadable images"):
    folder_source.load_folder(root, skip_unreadable=False)


def test_a_class_left_without_images_is_refused(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", splits=(("train", 2),))
  for image in (root / "train/dog").iterdir():
    image.write_bytes(b"not an image at all")
  message = one_line_error(root)
  assert "class 'dog'" in message and "no readable training image" in message
  assert "2 unreadable" in message and "BytesIO" not in message


def test_other_files_are_ignored_with_the_extensions_named(
  tmp_path, cache_dir, caplog
):
  root = write_folder(tmp_path / "images")
  (root / "train/cat/notes.txt").write_text("a note")
  Image.fromarray(pixels("train", 0, 9)).save(root / "train/cat/x.gif")
  with caplog.at_level(logging.WARNING):
    raw = folder_source.load_folder(root)
  assert len(raw.splits["train"][1]) == 12
  (warning,) = warnings_of(caplog)
  assert "ignored 2 file(s) that are not .jpg/.jpeg/.png" in warning


def test_images_of_different_shapes(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images")
  Image.fromarray(np.zeros((7, 5, 3), np.uint8)).save(root / "test/frog/x.png")
  message = one_line_error(root)
  assert "test/frog/x.png" in message and "share one shape" in message


def test_corrupt_archive(tmp_path, cache_dir):
  archive = tmp_path / "broken.tar.gz"
  archive.write_bytes(b"\x1f\x8b not really gzip")
  assert "cannot read archive" in one_line_error(archive)


def test_file_that_is_not_a_folder_or_archive(tmp_path, cache_dir):
  (tmp_path / "a.zip").write_bytes(b"PK")
  assert "neither a folder nor" in one_line_error(tmp_path / "a.zip")


def test_corrupt_member_of_archive_is_named(tmp_path, cache_dir, caplog):
  root = write_folder(tmp_path / "images")
  (root / "test/cat/bad.png").write_bytes(b"\x89PNG broken")
  archive = make_archive(root, tmp_path / "mini.tar.gz")
  with caplog.at_level(logging.WARNING):
    raw = folder_source.load_folder(archive)
  assert len(raw.splits["test"][1]) == 6
  (warning,) = warnings_of(caplog)
  assert f"{archive}:mini/test/cat/bad.png" in warning
  assert "BytesIO" not in warning


# --- hostile archives and degenerate data -----------------------------------


def add_member(tar, name, *, type_=tarfile.REGTYPE, data=b"", linkname=""):
  info = tarfile.TarInfo(name)
  info.type, info.size, info.linkname = type_, len(data), linkname
  tar.addfile(info, io.BytesIO(data) if data else None)


def png_bytes(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, "PNG")
  return buffer.getvalue()


@pytest.mark.parametrize(
  "link_type", [tarfile.SYMTYPE, tarfile.LNKTYPE], ids=["symlink", "hardlink"]
)
def test_link_members_named_like_images_are_skipped(
  tmp_path, cache_dir, link_type, caplog
):
  root = write_folder(tmp_path / "images")
  archive = tmp_path / "links.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="mini")
    add_member(
      tar,
      "mini/train/cat/evil.png",
      type_=link_type,
      linkname="mini/train/cat/00.png"
      if link_type == tarfile.LNKTYPE
      else "/etc/passwd",
    )
  with caplog.at_level(logging.WARNING):
    raw = folder_source.load_folder(archive)
  assert len(raw.splits["train"][1]) == 12  # the link is not an image
  (warning,) = [
    r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
  ]
  assert "skipped 1 members" in warning
  assert "mini/train/cat/evil.png" in warning


def test_absolute_and_dotdot_members_are_skipped(tmp_path, cache_dir):
  good = png_bytes(pixels("train", 0, 0))
  archive = tmp_path / "climb.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    for split, n in (("train", 5), ("test", 1)):
      for c in ("a", "b"):
        for i in range(n):
          add_member(tar, f"{split}/{c}/{i}.png", data=good)
    add_member(tar, "/abs/train/a/x.png", data=good)
    add_member(tar, "train/a/../../up.png", data=good)
  raw = folder_source.load_folder(archive)
  assert len(raw.splits["train"][1]) == 10


def test_archive_whose_only_image_has_an_absolute_name_is_refused(
  tmp_path, cache_dir
):
  archive = tmp_path / "abs.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    add_member(tar, "/abs/train/a/x.png", data=png_bytes(pixels("train", 0, 0)))
  message = one_line_error(archive)
  assert (
    "holds only links, special files or members with an absolute" in (message)
    and "(first: /abs/train/a/x.png)" in message
  )


def test_single_class_is_refused(tmp_path, cache_dir):
  root = write_folder(tmp_path / "images", classes=("cat",))
  message = one_line_error(root)
  assert "has 1 class(es) ['cat']" in message and "at least 2" in message


def test_too_few_images_for_a_test_split_are_refused(tmp_path, cache_dir):
  root = write_folder(
    tmp_path / "images", splits=(("train", 1),), classes=("cat", "dog")
  )
  message = one_line_error(root, validation_size=0)
  assert "empty test split" in message


def test_too_few_images_for_a_validation_split_are_refused(tmp_path, cache_dir):
  root = write_folder(
    tmp_path / "images",
    splits=(("train", 1), ("test", 1)),
    classes=("cat", "dog"),
  )
  message = one_line_error(root)
  assert "too few to carve a validation split" in message
  assert "validation_size=0" in message
  ds = data.load_dataset(f"folder:{root}", validation_size=0)  # as offered
  assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (2, 0, 2)


@pytest.mark.slow
def test_degenerate_archive_fails_the_binary_in_one_line(tmp_path):
  archive = tmp_path / "abs.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    add_member(tar, "/abs/train/a/x.png", data=png_bytes(pixels("train", 0, 0)))
  result = run_binary(
    "experiments.train",
    f"--dataset=folder:{archive}",
    "--epochs=1",
    f"--workdir={tmp_path / 'run'}",
    env={"LINEAR_JAX_CACHE": str(tmp_path / "cache")},
    timeout=300,
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert (
    lines[0].startswith("error: archive ")
    and "/abs/train/a/x.png" in (lines[0])
  )
  assert not (tmp_path / "run" / "summary.json").exists()
