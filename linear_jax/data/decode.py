"""Image files (or their bytes) to uint8 arrays ``[H, W, C]`` with PIL.

Grayscale (``L``, ``1``, ``LA``) becomes ``[H, W, 1]``; every other 8-bit
mode becomes RGB ``[H, W, 3]`` (alpha dropped, palettes expanded); 16-bit
and float images are refused. A file that PIL cannot read is an error that
names it.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image
from PIL import JpegImagePlugin

from linear_jax.checks import LinearJaxError

_FORMATS = {".jpg": ("JPEG",), ".jpeg": ("JPEG",), ".png": ("PNG",)}
_CHUNK = 1000


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split()) or type(error).__name__


def _open(opener, formats):
  """A PIL image, lazily decoded; JPEGs skip ``Image.open``'s plugin search.

  Constructing ``JpegImageFile`` directly costs ~90 µs per 32×32 CIFAR-10
  image against ~140 µs through ``Image.open`` (most of either is Python
  header parsing, not decoding).
  """
  if formats == ("JPEG",):
    try:
      return JpegImagePlugin.JpegImageFile(opener())
    except SyntaxError:  # not a JPEG inside, e.g. a PNG named .jpg
      pass
  try:  # naming the format skips PIL's probing of every plugin
    return Image.open(opener(), formats=formats)
  except Image.UnidentifiedImageError:  # e.g. a PNG named .jpg
    return Image.open(opener())


def decode_image(source: Path | bytes, name: str) -> np.ndarray:
  """One image as uint8 ``[H, W, 1]`` or ``[H, W, 3]``.

  Args:
    source: a file path, or the file's bytes (an archive member).
    name: the file's name for errors (and its suffix picks PIL's format).
  """
  formats = _FORMATS.get(os.path.splitext(name)[1].lower())
  opener = (lambda: io.BytesIO(source)) if isinstance(source, bytes) else (
      lambda: source)
  try:
    im = _open(opener, formats)
    with im:
      im.load()
      if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise LinearJaxError(
            f"image {name} is {im.mode} (16-bit or float); convert it to "
            "8-bit grayscale or RGB")
      if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1", "LA") else "RGB")
      # tobytes + frombuffer: the same bytes as np.asarray(im), ~10 % faster.
      array = np.frombuffer(im.tobytes(), np.uint8).reshape(
          im.size[1], im.size[0], -1)
  except LinearJaxError:
    raise
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise LinearJaxError(
        f"cannot decode image {name}: {_one_line(e)}; delete or replace the "
        "file") from None
  return array[..., None] if array.ndim == 2 else array


def decode_images(sources: list, names: list[str], shape: tuple) -> np.ndarray:
  """uint8 ``[N, *shape]`` from N paths or byte strings; all must be ``shape``.

  Chunks of images go to a small thread pool: PIL's decoder releases the
  GIL but its Python-side header parsing does not, so 2 cores gain ~15 %.
  """
  out = np.empty((len(sources),) + tuple(shape), np.uint8)

  def fill(start):
    for i in range(start, min(start + _CHUNK, len(sources))):
      image = decode_image(sources[i], names[i])
      if image.shape != out.shape[1:]:
        raise LinearJaxError(
            f"image {names[i]} has shape {image.shape}, the first training "
            f"image {out.shape[1:]}; all images must share one shape (resize "
            "them)")
      out[i] = image

  workers = min(4, os.cpu_count() or 1)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for _ in pool.map(fill, range(0, len(sources), _CHUNK)):
      pass
  return out
