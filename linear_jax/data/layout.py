"""The ``split/class/image`` layout (tfds ``ImageFolder``), read from path names.

``parse_layout`` sees only names (``"train/cat/0001.jpg"``), so the same rules
hold for a folder on disk and for the members of a ``.tar.gz``:

- splits are the top folders ``train`` (required), ``test`` and
  ``validation`` (or ``val``); other top-level entries are ignored;
- if no split folder is at the top but exactly one folder is, the layout is
  read inside it (an archive holding ``cifar10/train/...``);
- classes are the folders inside the train split, sorted; labels are their
  index; test and validation may lack some of them (small test sets often
  do) but hold no others;
- images are the ``.jpg``/``.jpeg``/``.png`` files (any case) directly
  inside a class folder, sorted by name; other files there are ignored with
  a warning that counts them, and hidden names (``.DS_Store``) silently.
"""

from __future__ import annotations

from absl import logging

from linear_jax.checks import LinearJaxError

SPLIT_DIRS = {
  "train": "train",
  "test": "test",
  "validation": "validation",
  "val": "validation",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _parts(name: str) -> tuple[str, ...]:
  return tuple(
    p for p in name.replace("\\", "/").split("/") if p not in ("", ".")
  )


def parse_layout(entries, shown: str) -> tuple[dict, tuple]:
  """Finds splits, classes and images among path names.

  Args:
    entries: ``(name, is_dir)`` pairs, names relative to the dataset root
      with ``/`` separators (as ``os.walk`` or ``tarfile`` give them).
    shown: how to name the dataset in errors.

  Returns:
    ``({split: [(label, name), ...]}, class_names)`` with the original names.
  """
  items = []
  for name, is_dir in entries:
    parts = _parts(name)
    if parts and not any(p.startswith(".") for p in parts):
      items.append((parts, is_dir, name))
  if not items:
    raise LinearJaxError(
      f"image folder {shown} is empty; lay images out as "
      f"{shown}/train/<class>/<image>.jpg"
    )
  dirs = {
    parts[:i]
    for parts, is_dir, _ in items
    for i in range(1, len(parts) + int(is_dir))
  }
  top = {parts[0] for parts, _, _ in items}
  if not top & set(SPLIT_DIRS) and len(top) == 1 and (min(top),) in dirs:
    items = [
      (parts[1:], is_dir, name)
      for parts, is_dir, name in items
      if len(parts) > 1
    ]
    dirs = {d[1:] for d in dirs if len(d) > 1}
    top = {parts[0] for parts, _, _ in items}

  split_dirs = {}
  for folder in sorted(top):
    if (folder,) in dirs and folder in SPLIT_DIRS:
      split = SPLIT_DIRS[folder]
      if split in split_dirs:
        raise LinearJaxError(
          f"image folder {shown} has both 'val' and 'validation'; keep one"
        )
      split_dirs[split] = folder
  if "train" not in split_dirs:
    raise LinearJaxError(
      f"image folder {shown} has no 'train' split (found {sorted(top)}); "
      f"lay images out as {shown}/train/<class>/<image>.jpg"
    )

  classes = {
    split: sorted(d[1] for d in dirs if len(d) == 2 and d[0] == folder)
    for split, folder in split_dirs.items()
  }
  class_names = tuple(classes["train"])
  if not class_names:
    raise LinearJaxError(
      f"the train split of image folder {shown} has no class folders; lay "
      f"images out as {shown}/train/<class>/<image>.jpg"
    )
  for split, names in classes.items():
    extra = sorted(set(names) - set(class_names))
    if extra:
      raise LinearJaxError(
        f"class folders differ between splits in {shown}: {split} has "
        f"{extra}, which train lacks; a classifier only predicts training "
        "classes, so add them to train or remove them from "
        f"{split_dirs[split]}"
      )

  label_of = {name: i for i, name in enumerate(class_names)}
  folder_split = {folder: split for split, folder in split_dirs.items()}
  files: dict[str, list[tuple[int, str]]] = {split: [] for split in split_dirs}
  ignored: list[str] = []
  for parts, is_dir, name in sorted(items):
    if not is_dir and len(parts) == 3 and parts[0] in folder_split:
      if parts[2].lower().endswith(IMAGE_SUFFIXES):
        files[folder_split[parts[0]]].append((label_of[parts[1]], name))
      else:
        ignored.append(name)
  if ignored:
    logging.warning(
      "image folder %s: ignored %d file(s) that are not %s (first: %s)",
      shown,
      len(ignored),
      "/".join(IMAGE_SUFFIXES),
      ignored[0],
    )
  for split, rows in files.items():
    if not rows:
      raise LinearJaxError(
        f"split {split!r} of image folder {shown} holds no .jpg/.jpeg/.png "
        f"images; put images in {shown}/{split_dirs[split]}/<class>/"
      )
  return files, class_names
