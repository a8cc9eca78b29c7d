"""Image files (or their bytes) to uint8 arrays ``[H, W, C]``.

Grayscale (``L``, ``1``, ``LA``) becomes ``[H, W, 1]``; every other 8-bit
mode becomes RGB ``[H, W, 3]`` (alpha dropped, palettes expanded); 16-bit
and float images are refused. A file that cannot be read is an error that
names it.

JPEGs in YCbCr or grayscale go through libjpeg-turbo directly
(``simplejpeg``): the same library and settings PIL uses (accurate integer
DCT, fancy upsampling), so the pixels are identical to PIL's, without PIL's
per-image Python cost. Everything else (PNG, CMYK and Adobe-RGB JPEGs, files
libjpeg-turbo reports as damaged, or no ``simplejpeg`` installed) is decoded
by PIL. A file that cannot be read or decoded raises ``UnreadableImage``
naming it (``decode_images`` can collect those instead).
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from linear_jax import progress
from linear_jax.checks import LinearJaxError

try:
  import simplejpeg  # pylint: disable=g-import-not-at-top
except ImportError:  # optional: PIL decodes everything without it
  simplejpeg = None

_FORMATS = {".jpg": ("JPEG",), ".jpeg": ("JPEG",), ".png": ("PNG",)}
_CHUNK = 1000
_JPEG_MAGIC = b"\xff\xd8\xff"
# libjpeg-turbo colour spaces decoded without PIL, and the output they get.
_FAST_COLORSPACES = {"YCbCr": "RGB", "Gray": "GRAY"}
# Seconds between two progress lines when stderr is not a terminal.
PROGRESS_EVERY_S = 3.0


# PIL names in-memory files by their repr: ``<_io.BytesIO object at 0x…>``.
_BUFFER_REPR = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _one_line(error: Exception) -> str:
  """The error's message on one line, without PIL's buffer reprs (the
  caller names the file).
  """
  text = _BUFFER_REPR.sub("", " ".join(str(error).split()))
  return text or type(error).__name__


def decode_jpeg_fast(data: bytes) -> np.ndarray | None:
  """uint8 ``[H, W, 3]`` (YCbCr JPEG) or ``[H, W, 1]`` (grayscale) via simplejpeg.

  Returns None for anything it does not decode exactly as PIL does: not a
  JPEG, another colour space, a damaged file, or simplejpeg not installed.
  """
  if simplejpeg is None or not data.startswith(_JPEG_MAGIC):
    return None
  try:
    colorspace = simplejpeg.decode_jpeg_header(data)[2]
    if colorspace not in _FAST_COLORSPACES:
      return None
    return simplejpeg.decode_jpeg(
      data,
      colorspace=_FAST_COLORSPACES[colorspace],
      fastdct=False,
      fastupsample=False,
      strict=True,
    )
  except ValueError:  # damaged: PIL decides, and its error names the file
    return None


def _open(data: bytes, formats):
  """A PIL image, lazily decoded; JPEGs skip ``Image.open``'s plugin search."""
  if formats == ("JPEG",):
    try:
      return JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    except SyntaxError:  # not a JPEG inside, e.g. a PNG named .jpg
      pass
  try:  # naming the format skips PIL's probing of every plugin
    return Image.open(io.BytesIO(data), formats=formats)
  except UnidentifiedImageError:  # e.g. a PNG named .jpg
    return Image.open(io.BytesIO(data))


def decode_pil(data: bytes, name: str) -> np.ndarray:
  """One image decoded by PIL as uint8 ``[H, W, 1]`` or ``[H, W, 3]``."""
  formats = _FORMATS.get(os.path.splitext(name)[1].lower())
  try:
    im = _open(data, formats)
    with im:
      im.load()
      if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise LinearJaxError(
          f"image {name} is {im.mode} (16-bit or float); convert it to "
          "8-bit grayscale or RGB"
        )
      if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1", "LA") else "RGB")
      # tobytes + frombuffer: the same bytes as np.asarray(im), ~10 % faster.
      array = np.frombuffer(im.tobytes(), np.uint8).reshape(
        im.size[1], im.size[0], -1
      )
  except LinearJaxError:
    raise
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise UnreadableImage(
      f"cannot decode image {name}: {_one_line(e)}; delete or replace the file"
    ) from None
  return array[..., None] if array.ndim == 2 else array


def decode_image(source: Path | bytes, name: str) -> np.ndarray:
  """One image as uint8 ``[H, W, 1]`` or ``[H, W, 3]``.

  Args:
    source: a file path, or the file's bytes (an archive member).
    name: the file's name for errors (and its suffix picks PIL's format).
  """
  if not isinstance(source, bytes):
    try:
      source = Path(source).read_bytes()
    except OSError as e:
      raise UnreadableImage(
        f"cannot read image {name}: {_one_line(e)}; check its permissions "
        "or remove it"
      ) from None
  array = decode_jpeg_fast(source)
  return decode_pil(source, name) if array is None else array


class UnreadableImage(LinearJaxError):
  """A file that cannot be read or decoded as an image (``decode_image``)."""


def decode_images(
  sources: list,
  names: list[str],
  shape: tuple,
  *,
  description: str | None = None,
  unreadable: list | None = None,
) -> np.ndarray:
  """uint8 ``[N, *shape]`` from N paths or byte strings; all must be ``shape``.

  Chunks of images go to a small thread pool (libjpeg-turbo and PIL's
  decoders drop the GIL while they work). ``description`` turns on progress
  reporting (count and rate) under that title. ``unreadable``: a list to
  collect ``(index, message)`` of the files that cannot be read or decoded,
  whose rows are then left as zeros, instead of raising at the first.
  """
  out = np.empty((len(sources),) + tuple(shape), np.uint8)

  def fill(start):
    stop = min(start + _CHUNK, len(sources))
    for i in range(start, stop):
      try:
        image = decode_image(sources[i], names[i])
      except UnreadableImage as e:
        if unreadable is None:
          raise
        unreadable.append((i, str(e)))
        out[i] = 0
        continue
      if image.shape != out.shape[1:]:
        raise LinearJaxError(
          f"image {names[i]} has shape {image.shape}, the first training "
          f"image {out.shape[1:]}; all images must share one shape (resize "
          "them)"
        )
      out[i] = image
    return stop - start

  bar = (
    progress.Progress(description, len(sources), every_seconds=PROGRESS_EVERY_S)
    if description
    else None
  )
  t0 = time.perf_counter()
  workers = min(4, os.cpu_count() or 1)
  done = 0
  try:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      for count in pool.map(fill, range(0, len(sources), _CHUNK)):
        done += count
        if bar is not None:
          rate = done / max(time.perf_counter() - t0, 1e-9)
          bar.update(done, note=f"{rate:,.0f} images/s")
  finally:
    if bar is not None:
      bar.close()
  return out
