"""The members of a ``.tar.gz``, read in one pass, for the image layout.

``read_members(path, want)`` returns ``[(name, kind, data)]`` in archive
order: ``kind`` is ``"file"`` (a regular file), ``"dir"`` or ``"other"``
(links, devices, FIFOs), and ``data`` is the file's bytes when
``want(name)`` holds, else None. Names are decoded and normalised as
``tarfile`` does (UTF-8 with surrogate escapes, a ustar ``prefix`` joined
on, trailing slashes of directories removed).

A gzip-compressed archive of plain ustar/GNU headers (what ``tar czf``
writes for ordinary files) is decompressed whole by zlib and its 512-byte
headers are parsed here, with a fraction of ``tarfile``'s per-member Python
work, which dominates reading tens of thousands of small images. Anything else (pax or
GNU long-name headers, sparse files, base-256 numbers, a bad checksum, bzip2
or xz compression, truncation) is read by ``tarfile`` itself, so every
archive gets ``tarfile``'s members and errors.
"""

from __future__ import annotations

import os
import sys
import tarfile
import zlib
from typing import Callable

_BLOCK = 512
_GZIP_MAGIC = b"\x1f\x8b"
_FILE_TYPES = (b"0", b"\0", b"7")  # regular, old regular, contiguous
_DIR_TYPE = b"5"
_OTHER_TYPES = (b"1", b"2", b"3", b"4", b"6")  # hard/sym link, dev, FIFO
_ENCODING = sys.getfilesystemencoding()


class _Irregular(Exception):
  """Raised by the fast reader for anything it leaves to ``tarfile``."""


def _field(header: bytes, start: int, stop: int) -> bytes:
  """A NUL-terminated header field."""
  end = header.find(b"\0", start, stop)
  return header[start : stop if end < 0 else end]


def _number(header: bytes, start: int, stop: int) -> int:
  raw = header[start:stop]
  if raw[:1] in (b"\x80", b"\xff"):  # base-256: left to tarfile
    raise _Irregular("base-256 number")
  text = _field(header, start, stop).strip(b" \0")
  try:
    return int(text or b"0", 8)
  except ValueError:
    raise _Irregular("bad number") from None


def _gunzip(path: str | os.PathLike) -> bytes:
  with open(path, "rb") as f:
    compressed = f.read()
  if not compressed.startswith(_GZIP_MAGIC):
    raise _Irregular("not gzip")
  parts = []
  try:
    while compressed:
      inflater = zlib.decompressobj(wbits=31)
      parts.append(inflater.decompress(compressed))
      if not inflater.eof:
        raise _Irregular("truncated gzip stream")
      compressed = inflater.unused_data
  except zlib.error:
    raise _Irregular("damaged gzip stream") from None
  return b"".join(parts)


def _read_fast(path, want) -> list:
  """Members of a gzip-compressed archive of plain headers; raises
  ``_Irregular`` for anything else.
  """
  buffer = _gunzip(path)
  members = []
  pos = 0
  while True:
    if pos + _BLOCK > len(buffer):
      raise _Irregular("truncated archive")
    header = buffer[pos : pos + _BLOCK]
    if not header.strip(b"\0"):
      break  # end-of-archive block, as tarfile stops there
    checksum = _number(header, 148, 156)
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32
    if checksum != unsigned:
      raise _Irregular("checksum")
    type_ = header[156:157]
    name = _field(header, 0, 100)
    prefix = _field(header, 345, 500)
    if prefix:
      name = prefix + b"/" + name
    size = _number(header, 124, 136)
    text = name.decode(_ENCODING, "surrogateescape")
    if type_ == b"\0" and text.endswith("/"):
      type_ = _DIR_TYPE
    if size and type_ not in _FILE_TYPES:
      raise _Irregular("data on a member that is not a file")
    start = pos + _BLOCK
    pos = start + -(-size // _BLOCK) * _BLOCK
    if start + size > len(buffer):
      raise _Irregular("truncated member")
    if type_ in _FILE_TYPES:
      data = buffer[start : start + size] if want(text) else None
      members.append((text, "file", data))
    elif type_ == _DIR_TYPE:
      members.append((text.rstrip("/"), "dir", None))
    elif type_ in _OTHER_TYPES:
      members.append((text, "other", None))
    else:
      raise _Irregular(f"member type {type_!r}")
  return members


def _read_tarfile(path, want) -> list:
  members = []
  with tarfile.open(path, "r:*") as tar:
    for member in tar:
      if member.isfile():
        fileobj = tar.extractfile(member) if want(member.name) else None
        data = None if fileobj is None else fileobj.read()
        members.append((member.name, "file", data))
      else:
        members.append(
          (member.name, "dir" if member.isdir() else "other", None)
        )
  return members


def read_members(
  path: str | os.PathLike, want: Callable[[str], bool]
) -> list[tuple[str, str, bytes | None]]:
  """``[(name, kind, data)]`` of a tar archive (module docstring).

  Raises ``tarfile.TarError``, ``OSError`` or ``EOFError`` for an archive
  that ``tarfile`` cannot read either.
  """
  try:
    return _read_fast(path, want)
  except _Irregular:
    return _read_tarfile(path, want)
