"""Image decoding: the libjpeg-turbo fast path equals PIL pixel for pixel,
PIL handles the rest, and long decodes report progress.
"""

import io
import logging
import tarfile

import numpy as np
import pytest
from PIL import Image

from linear_jax import LinearJaxError
from linear_jax.data import decode


def jpeg_bytes(array, *, mode=None, **save_options) -> bytes:
  image = Image.fromarray(array)
  if mode is not None:
    image = image.convert(mode)
  buffer = io.BytesIO()
  image.save(buffer, "JPEG", **save_options)
  return buffer.getvalue()


def textured(shape, seed):
  """Noise on a ramp: exercises the DCT and chroma upsampling."""
  rng = np.random.default_rng(seed)
  ramp = np.add.outer(np.arange(shape[0]), np.arange(shape[1]))
  ramp = ramp.reshape(shape[:2] + (1,) * (len(shape) - 2))
  return (rng.integers(0, 80, shape) + 3 * ramp).clip(0, 255).astype(np.uint8)


JPEG_CASES = [  # (shape, save options)
  ((32, 32, 3), {"quality": 90, "subsampling": 2}),  # 4:2:0
  ((33, 17, 3), {"quality": 75, "subsampling": 1}),  # 4:2:2, odd size
  ((7, 5, 3), {"quality": 95, "subsampling": 0}),  # 4:4:4, tiny
  ((64, 48, 3), {"quality": 60, "progressive": True}),
  ((31, 45, 3), {"quality": 100, "subsampling": 2, "optimize": True}),
  ((32, 32), {"quality": 90}),  # grayscale
  ((21, 9), {"quality": 50, "progressive": True}),  # grayscale
]


@pytest.mark.parametrize("shape, options", JPEG_CASES)
def test_fast_path_equals_pil_on_written_jpegs(shape, options):
  data = jpeg_bytes(textured(shape, seed=len(shape) + shape[0]), **options)
  fast = decode.decode_jpeg_fast(data)
  assert fast is not None, "this JPEG should take the fast path"
  pil = np.asarray(Image.open(io.BytesIO(data)))
  pil = pil[..., None] if pil.ndim == 2 else pil
  assert fast.dtype == np.uint8 and fast.shape == pil.shape
  np.testing.assert_array_equal(fast, pil)
  np.testing.assert_array_equal(decode.decode_image(data, "x.jpg"), pil)


def test_cmyk_jpeg_falls_back_to_pil():
  data = jpeg_bytes(textured((16, 12, 3), seed=1), mode="CMYK", quality=90)
  assert decode.decode_jpeg_fast(data) is None
  expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
  np.testing.assert_array_equal(decode.decode_image(data, "cmyk.jpg"), expected)


def test_png_named_jpg_and_jpeg_named_png_decode():
  pixels = textured((9, 7, 3), seed=2)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "PNG")
  np.testing.assert_array_equal(
    decode.decode_image(buffer.getvalue(), "really_a_png.jpg"), pixels
  )
  data = jpeg_bytes(pixels, quality=90)
  np.testing.assert_array_equal(
    decode.decode_image(data, "really_a_jpeg.png"),
    np.asarray(Image.open(io.BytesIO(data))),
  )


def test_truncated_jpeg_is_an_error_naming_the_file():
  data = jpeg_bytes(textured((32, 32, 3), seed=3), quality=90)
  assert decode.decode_jpeg_fast(data[: len(data) // 2]) is None
  with pytest.raises(LinearJaxError) as e:
    decode.decode_image(data[: len(data) // 2], "train/cat/cut.jpg")
  assert "cannot decode image train/cat/cut.jpg" in str(e.value)
  assert "\n" not in str(e.value)


def test_without_simplejpeg_pil_decodes_the_same(monkeypatch):
  data = jpeg_bytes(textured((32, 32, 3), seed=4), quality=80)
  fast = decode.decode_image(data, "x.jpg")
  monkeypatch.setattr(decode, "simplejpeg", None)
  assert decode.decode_jpeg_fast(data) is None
  np.testing.assert_array_equal(decode.decode_image(data, "x.jpg"), fast)


def test_progress_lines_count_and_rate(monkeypatch, caplog):
  monkeypatch.setattr(decode, "PROGRESS_EVERY_S", 0.0)
  monkeypatch.setattr(decode, "_CHUNK", 4)
  images = [textured((8, 8, 3), seed=i) for i in range(10)]
  sources = [jpeg_bytes(a, quality=90) for a in images]
  with caplog.at_level(logging.INFO):
    out = decode.decode_images(
      sources,
      [f"{i}.jpg" for i in range(10)],
      (8, 8, 3),
      description="decoding 10 images",
    )
  assert out.shape == (10, 8, 8, 3)
  lines = [
    r.getMessage()
    for r in caplog.records
    if r.getMessage().startswith("decoding 10 images")
  ]
  counts = [
    line.removeprefix("decoding 10 images ").split(" ")[0] for line in lines
  ]
  assert counts == ["4/10", "8/10", "10/10"]
  rate = float(
    lines[-1].split("  ")[1].removesuffix(" images/s").replace(",", "")
  )
  assert rate > 0 and "ETA" in lines[-1]


@pytest.mark.slow
def test_fast_path_equals_pil_on_the_shared_test_split(cifar10_jpeg_archive):
  checked = 0
  with tarfile.open(cifar10_jpeg_archive, "r:gz") as tar:
    for member in tar:
      if (
        member.isfile()
        and "/test/" in f"/{member.name}"
        and (member.name.endswith(".jpg"))
      ):
        data = tar.extractfile(member).read()
        fast = decode.decode_jpeg_fast(data)
        assert fast is not None, member.name
        pil = np.asarray(Image.open(io.BytesIO(data)))
        if not np.array_equal(fast, pil):
          pytest.fail(f"{member.name}: fast path differs from PIL")
        checked += 1
  assert checked == 10000
