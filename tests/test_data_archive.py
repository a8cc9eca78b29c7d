"""Reading tar archives: the fast reader gives exactly tarfile's members, and
leaves every archive it does not handle to tarfile.
"""

import gzip
import io
import tarfile

import pytest

from linear_jax.data import archive

WANT = lambda name: name.endswith((".png", ".jpg"))


def add(tar, name, *, type_=tarfile.REGTYPE, data=b"", linkname="", mtime=0):
  info = tarfile.TarInfo(name)
  info.type, info.size, info.linkname, info.mtime = (
    type_,
    len(data),
    linkname,
    mtime,
  )
  tar.addfile(info, io.BytesIO(data) if data else None)


def members(tar, long_name=True):
  add(tar, "top", type_=tarfile.DIRTYPE)
  add(tar, "top/train", type_=tarfile.DIRTYPE)
  add(tar, "top/train/cat/a.png", data=b"\x89PNG" + bytes(range(256)) * 3)
  add(tar, "top/train/cat/b.jpg", data=b"\xff\xd8" + b"x" * 511)  # one block
  add(tar, "top/train/cat/empty.jpg")
  add(tar, "top/notes.txt", data=b"not wanted")
  add(tar, "top/train/cat/link.png", type_=tarfile.SYMTYPE, linkname="a.png")
  add(
    tar,
    "top/train/cat/hard.png",
    type_=tarfile.LNKTYPE,
    linkname="top/train/cat/a.png",
  )
  add(tar, "top/fifo", type_=tarfile.FIFOTYPE)
  if long_name:  # ustar splits it into prefix + name; GNU needs an L header
    add(
      tar,
      "top/train/dog/" + "d" * 90 + "/" + "n" * 60 + ".png",
      data=b"long name",
    )
  add(tar, "top/train/dog/caf\u00e9.png", data=b"utf-8 name")


def write(path, fmt, *, compress=True, long_name=None):
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
    members(tar, fmt != tarfile.GNU_FORMAT if long_name is None else long_name)
  raw = buffer.getvalue()
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


def reference(path):
  return archive._read_tarfile(path, WANT)


@pytest.mark.parametrize(
  "fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT], ids=["gnu", "ustar"]
)
def test_fast_reader_equals_tarfile_on_plain_archives(
  tmp_path, fmt, monkeypatch
):
  path = write(tmp_path / "a.tar.gz", fmt)
  expected = reference(path)
  assert (
    "top/train/cat/a.png",
    "file",
    b"\x89PNG" + bytes(range(256)) * 3,
  ) in expected
  assert ("top/notes.txt", "file", None) in expected
  assert {kind for _, kind, _ in expected} == {"file", "dir", "other"}
  monkeypatch.setattr(archive, "_read_tarfile", None)  # must not be needed
  assert archive.read_members(path, WANT) == expected


@pytest.mark.parametrize(
  "fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu-long-name"]
)
def test_pax_and_long_name_headers_go_to_tarfile(tmp_path, fmt):
  path = write(tmp_path / "a.tar.gz", fmt, long_name=True)
  with pytest.raises(archive._Irregular):
    archive._read_fast(path, WANT)
  expected = reference(path)
  assert any(len(name) > 100 for name, _, _ in expected)
  assert archive.read_members(path, WANT) == expected


def test_uncompressed_tar_goes_to_tarfile(tmp_path):
  path = write(tmp_path / "plain.tgz", tarfile.GNU_FORMAT, compress=False)
  assert archive.read_members(path, WANT) == reference(path)


def test_bad_checksum_goes_to_tarfile(tmp_path):
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
    members(tar)
  raw = bytearray(buffer.getvalue())
  raw[512 * 2 + 10] ^= 0x20  # a name byte of the third header
  path = tmp_path / "bad.tar.gz"
  path.write_bytes(gzip.compress(bytes(raw)))
  with pytest.raises(archive._Irregular, match="checksum"):
    archive._read_fast(path, WANT)
  # tarfile stops at a bad header after the first member: so does the result.
  assert archive.read_members(path, WANT) == reference(path)
  assert len(reference(path)) == 2


def outcome(read):
  try:
    return read()
  except (tarfile.TarError, EOFError, OSError) as e:
    return type(e)


@pytest.mark.parametrize("cut", [100, 600, 1500, 2000])
def test_truncated_archive_reads_as_tarfile_reads_it(tmp_path, cut):
  buffer = io.BytesIO()
  with tarfile.open(
    fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT
  ) as tar:
    members(tar)
  path = tmp_path / "cut.tar.gz"
  path.write_bytes(gzip.compress(buffer.getvalue()[:cut]))
  with pytest.raises(archive._Irregular, match="truncated"):
    archive._read_fast(path, WANT)
  assert outcome(lambda: archive.read_members(path, WANT)) == outcome(
    lambda: reference(path)
  )


def test_directory_header_with_data_goes_to_tarfile(tmp_path):
  """Tarfile ignores a size on a directory: the fast reader must not skip it."""
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
    add(tar, "train/cat/a.png", data=b"x" * 600)
  raw = bytearray(buffer.getvalue())
  info = tarfile.TarInfo("train")
  info.type, info.size = tarfile.DIRTYPE, 512
  block = info.tobuf(tarfile.GNU_FORMAT)
  path = tmp_path / "dirdata.tar.gz"
  path.write_bytes(gzip.compress(block + bytes(raw)))
  with pytest.raises(archive._Irregular):
    archive._read_fast(path, WANT)
  assert archive.read_members(path, WANT) == reference(path)


@pytest.mark.slow
def test_fast_reader_equals_tarfile_on_the_shared_archive(cifar10_jpeg_archive):
  fast = archive._read_fast(cifar10_jpeg_archive, WANT)
  assert len(fast) == 60022  # 60,000 images + 22 folders
  assert fast == reference(cifar10_jpeg_archive)
