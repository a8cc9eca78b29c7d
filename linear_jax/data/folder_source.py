"""Images from a folder ``split/class/image.{jpg,jpeg,png}`` or a ``.tar.gz`` of one.

Only ``.jpg``, ``.jpeg`` and ``.png`` files (any case) are read; other files
in class folders are ignored, with a warning that counts them. Images that
cannot be read or decoded (truncated or corrupt files) are skipped with one
warning that counts them and names the first few, so that one bad file does
not stop a run; a training class left with no readable image is refused.

``PATH`` is laid out as tfds' ``ImageFolder`` expects (rules in
``linear_jax.data.layout``)::

    PATH/train/<class>/<image>.jpg     required
    PATH/test/<class>/<image>.png      optional (else a fixed 20 % of train)
    PATH/validation/<class>/...        optional (``val`` also accepted)

or is a ``.tar.gz``/``.tgz`` archive of that layout, possibly under one top
folder. An archive is read once, in memory, straight from its members
(``linear_jax.data.archive``); nothing is written out. Only regular files
and folders count: links, devices and members with an absolute or ``..``
name are skipped with a warning, and an archive of nothing else is refused.

Decoding (``linear_jax.data.decode``) logs the count of images decoded and
the rate every few seconds (a tqdm bar when stderr is a terminal). Decoded
splits are cached as uint8 ``.npy`` files (``linear_jax.data.cache``),
verified on every load, keyed by the absolute path plus size and
modification time of every image (of the archive file, for an archive), so
a changed folder is read again; a cache hit logs how long loading took.
"""

from __future__ import annotations

import os
import re
import tarfile
import time
from pathlib import Path

import numpy as np
from absl import logging

from linear_jax.checks import LinearJaxError
from linear_jax.data import archive, cache, dataset, decode, layout
from linear_jax.data.dataset import RawData

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# Bump when the decoded format changes, so old cache entries are not reused.
_CACHE_VERSION = 1


def _entry(root: Path, path: Path, key: str) -> Path:
  """The cache folder for ``path``: readable name plus content key."""
  stem = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:40]
  return root / f"folder-{stem}-{key}"


def _walk(root: Path) -> tuple[list, dict]:
  """``([(relative name, is_dir)], {image name: (size, mtime_ns)})`` of a folder."""
  entries: list[tuple[str, bool]] = []
  stats: dict[str, tuple[int, int]] = {}
  for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
    depth = prefix.count("/")
    if depth >= 3:  # inside class folders (or top/split/class): stop
      dirnames[:] = []
    entries.extend((prefix + d, True) for d in dirnames)
    for f in filenames:
      name = prefix + f
      entries.append((name, False))
      if depth in (2, 3) and f.lower().endswith(layout.IMAGE_SUFFIXES):
        st = os.stat(os.path.join(dirpath, f))
        stats[name] = (st.st_size, st.st_mtime_ns)
  return entries, stats


def _unsafe_name(name: str) -> bool:
  """An absolute member name, or one that climbs out with ``..``."""
  parts = name.replace("\\", "/").split("/")
  return name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


def _read_archive(path: Path, shown: str) -> tuple[list, dict]:
  """``([(member name, is_dir)], {image member name: bytes})`` of a tar archive.

  Only directories and regular files count. Links, devices and members with
  an absolute or ``..`` name are skipped with one warning naming the first.
  """
  is_image = lambda name: name.lower().endswith(layout.IMAGE_SUFFIXES)
  try:
    members = archive.read_members(path, is_image)
  except (tarfile.TarError, EOFError, OSError) as e:
    raise LinearJaxError(
      f"cannot read archive {shown}: {' '.join(str(e).split())}; check the "
      "file, or unpack it and pass folder:<unpacked folder>"
    ) from None
  entries, data, skipped = [], {}, []
  for name, kind, content in members:
    if kind == "other" or _unsafe_name(name):
      skipped.append(name)
      continue
    entries.append((name, kind == "dir"))
    if content is not None:
      data[name] = content
  if skipped and not entries:
    raise LinearJaxError(
      f"archive {shown} holds only links, special files or members with an "
      f"absolute or '..' name (first: {skipped[0]}), which are never read; "
      "pack the images as regular files named train/<class>/<image>.jpg"
    )
  if skipped:
    logging.warning(
      "archive %s: skipped %d members that are links, special files or "
      "have an absolute or '..' name (first: %s)",
      shown,
      len(skipped),
      skipped[0],
    )
  return entries, data


#: How many unreadable files a warning names (all are counted).
NAMED_UNREADABLE = 5


def _decode_splits(
  files: dict, source_of, name_of, shown: str, class_names: tuple
) -> tuple[dict, list]:
  """``{split: (x uint8 [N, H, W, C], y int32 [N])}`` from the layout's
  files, and the names of the files skipped as unreadable.

  ``source_of(name)`` gives a path or bytes to decode, ``name_of(name)`` how
  errors name the file. Files that cannot be read or decoded are skipped
  with one warning that counts them and names the first few; a training
  class left without images is refused (other splits may lack classes).
  """
  unreadable = []  # (index into the flat list of rows, message)
  rows = [row for split_rows in files.values() for row in split_rows]
  shape = None
  for i, (_, name) in enumerate(files["train"]):  # the first readable one
    try:
      shape = decode.decode_image(source_of(name), name_of(name)).shape
      break
    except decode.UnreadableImage as e:
      unreadable.append((i, str(e)))
  if shape is None:
    raise LinearJaxError(
      f"none of the {len(files['train'])} training images of image folder "
      f"{shown} can be read ({unreadable[0][1]}); replace the files"
    )
  dataset.check_memory(len(rows), shape, f"image folder {shown}")
  names = [name for _, name in rows]
  x = decode.decode_images(
    [source_of(n) for n in names],
    [name_of(n) for n in names],
    shape,
    description=f"decoding {len(rows):,} images from {shown}",
    unreadable=unreadable,
  )
  bad = np.zeros(len(rows), bool)
  bad[[i for i, _ in unreadable]] = True
  labels = np.array([label for label, _ in rows], np.int32)
  skipped = [name_of(names[i]) for i in np.flatnonzero(bad)]
  if skipped:
    first = min(unreadable)[1]
    logging.warning(
      "image folder %s: skipped %d unreadable image(s) of %d (first: %s; %s)",
      shown,
      len(skipped),
      len(rows),
      ", ".join(skipped[:NAMED_UNREADABLE]),
      first,
    )
  splits, start = {}, 0
  for split, split_rows in files.items():
    stop = start + len(split_rows)
    keep = ~bad[start:stop]
    x_split, y_split = x[start:stop], labels[start:stop]
    if not keep.all():
      x_split, y_split = x_split[keep], y_split[keep]
    splits[split] = (x_split, y_split)
    start = stop
  counts = np.bincount(splits["train"][1], minlength=len(class_names))
  if not counts.all():
    empty = class_names[int(np.argmin(counts))]
    detail = (
      f" ({len(skipped)} unreadable in all, first: {skipped[0]})"
      if skipped
      else ""
    )
    raise LinearJaxError(
      f"class {empty!r} of image folder {shown} has no readable training "
      f"image{detail}; add or replace its images, or remove the class folder"
    )
  return splits, skipped


def _from_cache(entry: Path) -> tuple[dict, tuple, tuple] | None:
  """``(splits, class_names, (unreadable count, first names))`` of a
  verified cache entry that holds a usable dataset (uint8 images, labels in
  [0, C)), else None (rebuild it).
  """
  loaded = cache.load_entry(entry)
  if loaded is None:
    return None
  arrays, meta = loaded
  try:
    class_names = tuple(str(c) for c in meta["class_names"])
    splits = {
      split: (arrays[f"x_{split}"], arrays[f"y_{split}"])
      for split in meta["splits"]
    }
    for split, (x, y) in splits.items():
      if x.dtype != np.uint8 or x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
          f"split {split} holds {x.dtype} {x.shape} images and {y.shape} labels"
        )
      if y.size and (y.min() < 0 or y.max() >= len(class_names)):
        raise ValueError(
          f"labels of split {split} leave [0, {len(class_names)})"
        )
    if "train" not in splits:
      raise ValueError("no train split")
  except (KeyError, TypeError, ValueError) as e:
    logging.warning(
      "cache entry %s is damaged (%s); rebuilding it",
      entry,
      " ".join(str(e).split()) or type(e).__name__,
    )
    return None
  skipped = (
    int(meta.get("unreadable", 0)),
    [str(n) for n in meta.get("unreadable_first", [])],
  )
  return splits, class_names, skipped


def load_folder(path, *, cache_dir=None, skip_unreadable=True) -> RawData:
  """Reads (or reloads from the cache) an image folder or archive.

  Args:
    path: a folder laid out ``split/class/image``, or a ``.tar.gz`` of one.
    cache_dir: cache folder (default ``$LINEAR_JAX_CACHE`` or
      ``~/.cache/linear_jax``).
    skip_unreadable: skip images that cannot be read, with a warning
      (module docstring); False refuses them, for callers whose outputs are
      matched to the images by position (predictions).

  Returns:
    ``RawData`` with uint8 images ``[N, H, W, C]`` and int32 labels ``[N]``.
  """
  shown = str(path)
  path = Path(path).expanduser().absolute()
  if not path.exists():
    raise LinearJaxError(
      f"image folder {shown} does not exist; pass folder:PATH with PATH a "
      "folder train/<class>/<image>.jpg or a .tar.gz of one"
    )
  root = cache.cache_root(cache_dir)
  if path.is_dir():
    entries, stats = _walk(path)
    files, class_names = layout.parse_layout(entries, shown)
    listing = [(n, stats[n]) for rows in files.values() for _, n in rows]
    key = cache.content_key("folder", str(path), listing, _CACHE_VERSION)
    source_of = lambda name: path / name
    name_of = lambda name: str(path / name)
  elif path.name.lower().endswith(ARCHIVE_SUFFIXES):
    st = path.stat()
    key = cache.content_key(
      "archive", str(path), st.st_size, st.st_mtime_ns, _CACHE_VERSION
    )
    files = None  # read the archive only on a cache miss
  else:
    raise LinearJaxError(
      f"{shown} is neither a folder nor a .tar.gz/.tgz archive; pass an "
      "image folder or an archive of one"
    )

  entry = _entry(root, path, key)
  start = time.perf_counter()
  loaded = _from_cache(entry)
  if loaded is not None:
    splits, class_names, cached_skips = loaded
    logging.info(
      "loaded %s from the cache in %.2f s (%s)",
      shown,
      time.perf_counter() - start,
      entry,
    )
    if cached_skips[0] and skip_unreadable:
      logging.warning(
        "image folder %s: %d unreadable image(s) were skipped when it was "
        "decoded (first: %s)",
        shown,
        cached_skips[0],
        ", ".join(cached_skips[1]),
      )
    skipped = list(cached_skips[1][: cached_skips[0]])
  else:
    if files is None:
      entries, data = _read_archive(path, shown)
      files, class_names = layout.parse_layout(entries, shown)
      source_of = data.__getitem__
      name_of = lambda name: f"{shown}:{name}"
    splits, skipped = _decode_splits(
      files, source_of, name_of, shown, class_names
    )
    arrays = {}
    for split, (x, y) in splits.items():
      arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    cache.save_entry(
      entry,
      arrays,
      {
        "class_names": list(class_names),
        "splits": list(splits),
        "source": str(path),
        "unreadable": len(skipped),
        "unreadable_first": skipped[:NAMED_UNREADABLE],
      },
    )
  if skipped and not skip_unreadable:
    raise LinearJaxError(
      f"image folder {shown} has unreadable images (first: {skipped[0]}); "
      "outputs are matched to images by position, so replace or remove them"
    )
  return RawData(
    splits=splits,
    class_names=tuple(class_names),
    image_shape=tuple(splits["train"][0].shape[1:]),
  )
