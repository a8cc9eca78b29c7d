"""linear_jax.io: atomic writes ignore planted symlinks, follow the umask, and
JSON never holds NaN.
"""

import json
import math
import os

import numpy as np
import pytest

from linear_jax import io


def test_atomic_write_replaces_content_and_leaves_no_temporaries(tmp_path):
  path = tmp_path / "a.txt"
  io.atomic_write(path, "one")
  io.atomic_write(path, b"two")
  io.atomic_write(path, lambda f: f.write(b"three"))
  assert path.read_text() == "three"
  assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_planted_symlinks_are_not_followed(tmp_path):
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  out = tmp_path / "wd"
  out.mkdir()
  # Links at the names a naive writer would use.
  for name in ("summary.json.tmp", f"{io.TEMP_PREFIX}summary.json"):
    (out / name).symlink_to(victim)
  io.write_json(out / "summary.json", {"x": 1})
  assert victim.read_text() == "precious"
  assert not (out / "summary.json").is_symlink()
  assert json.loads((out / "summary.json").read_text()) == {"x": 1}


def test_append_refuses_a_symlink(tmp_path):
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  (tmp_path / "metrics.jsonl").symlink_to(victim)
  with pytest.raises(OSError):
    io.append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1})
  assert victim.read_text() == "precious"


@pytest.mark.slow
def test_permissions_follow_the_umask(tmp_path):
  """A process started under umask 027 writes 0640 files (0600 would be
  mkstemp's own mode).
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  code = (
    f"from linear_jax import io; io.atomic_write({str(tmp_path / 'a')!r}, 'x')"
  )
  subprocess.run(
    ["sh", "-c", 'umask 027 && exec "$0" -c "$1"', sys.executable, code],
    check=True,
  )
  assert (os.stat(tmp_path / "a").st_mode & 0o777) == 0o640
  io.atomic_write(tmp_path / "b", "x")  # this process: its own umask
  assert (os.stat(tmp_path / "b").st_mode & 0o777) == 0o666 & ~io._read_umask()


def test_json_is_strict():
  text = io.dumps(
    {
      "a": float("nan"),
      "b": [np.float32(np.inf), 1.5],
      "c": np.arange(2),
      "d": (1, -math.inf),
    }
  )
  assert json.loads(text) == {
    "a": None,
    "b": [None, 1.5],
    "c": [0, 1],
    "d": [1, None],
  }


def test_jsonl_append_and_torn_last_line(tmp_path):
  path = tmp_path / "m.jsonl"
  io.append_jsonl(path, {"epoch": 1, "loss": float("nan")})
  io.append_jsonl(path, {"epoch": 2, "loss": 0.5})
  with open(path, "a") as f:
    f.write('{"epoch": 3, "lo')  # killed mid-write
  assert io.read_jsonl(path) == [
    {"epoch": 1, "loss": None},
    {"epoch": 2, "loss": 0.5},
  ]


def test_remove_temporaries_removes_ours_only(tmp_path):
  ours = f"{io.TEMP_PREFIX}ab3_x9yz-checkpoint.npz"  # mkstemp: 8 characters
  (tmp_path / ours).write_text("x")
  (tmp_path / "keep.npz").write_text("y")
  (tmp_path / f"{io.TEMP_PREFIX}notes").write_text("a user's file")
  (tmp_path / f"{io.TEMP_PREFIX}abcdefgh-dir").mkdir()
  assert io.remove_temporaries(tmp_path) == [ours]
  assert sorted(os.listdir(tmp_path)) == [
    f"{io.TEMP_PREFIX}abcdefgh-dir",
    f"{io.TEMP_PREFIX}notes",
    "keep.npz",
  ]
