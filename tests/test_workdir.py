"""``linear_jax.workdir``: one writer per workdir, with real processes."""

import errno
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import linear_jax as lj
from linear_jax import workdir

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_second_process_is_refused_in_one_line_and_writes_nothing(
  tmp_path, lock_holder
):
  folder = tmp_path / "run"
  with lock_holder(folder) as pid:
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    holder = json.loads((folder / workdir.LOCK_NAME).read_text())
    assert holder["pid"] == pid and holder["host"] == socket.gethostname()
    with (
      pytest.raises(lj.LinearJaxError) as e,
      workdir.workdir_lock(folder),
    ):
      pass
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{folder} is in use by PID {pid} on ")
    assert socket.gethostname() in message and "--workdir" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
  # The holder ended: its lock file is gone, and so is the folder it made.
  assert not folder.exists()
  with workdir.workdir_lock(folder):
    assert json.loads((folder / workdir.LOCK_NAME).read_text())["pid"] == (
      os.getpid()
    )
  assert not folder.exists()


def test_a_lock_file_of_a_dead_process_is_taken_over_with_a_note(
  tmp_path, caplog
):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  with pytest.raises(ProcessLookupError):
    os.kill(dead.pid, 0)  # no such process any more
  folder = tmp_path / "run"
  folder.mkdir()
  (folder / "results.csv").write_text("kept")
  stale = {"pid": dead.pid, "host": socket.gethostname(), "started": "then"}
  (folder / workdir.LOCK_NAME).write_text(json.dumps(stale))
  with caplog.at_level(logging.WARNING), workdir.workdir_lock(folder):
    holder = json.loads((folder / workdir.LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid()
  notes = [r.getMessage() for r in caplog.records if "took over" in r.msg]
  assert len(notes) == 1 and f"PID {dead.pid} on " in notes[0], notes
  assert "\n" not in notes[0]
  assert sorted(p.name for p in folder.iterdir()) == ["results.csv"]


def test_reentrant_in_its_thread_refused_in_another(tmp_path):
  folder = tmp_path / "run"
  errors = []

  def other_thread():
    try:
      with workdir.workdir_lock(folder):
        pass
    except lj.LinearJaxError as e:
      errors.append(str(e))

  with workdir.workdir_lock(folder):
    with workdir.workdir_lock(folder):  # a binary locks, the library again
      (folder / "out.txt").write_text("x")
    assert (folder / workdir.LOCK_NAME).exists()  # still held
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
  assert len(errors) == 1 and "another thread of this process" in errors[0]
  assert sorted(p.name for p in folder.iterdir()) == ["out.txt"]


@pytest.mark.slow
def test_output_lock_is_per_file(tmp_path, lock_holder):
  output = tmp_path / "preds.npz"
  with lock_holder(output, output=True) as pid:
    with (
      pytest.raises(lj.LinearJaxError, match=f"PID {pid} on .*--output"),
      workdir.output_lock(output),
    ):
      pass
    with workdir.output_lock(tmp_path / "other.npz"):  # another file: free
      pass
    with workdir.workdir_lock(tmp_path):  # the folder as a workdir: free
      pass


def test_a_filesystem_without_locks_runs_on_with_a_warning(
  tmp_path, monkeypatch, caplog
):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

  monkeypatch.setattr(fcntl, "flock", no_locks)
  with caplog.at_level(logging.WARNING), workdir.workdir_lock(tmp_path / "r"):
    (tmp_path / "r" / "out.txt").write_text("x")
  warnings = [r.getMessage() for r in caplog.records]
  assert any("does not support file locks" in w for w in warnings), warnings


@pytest.mark.parametrize("slash", ["", "/"])
def test_a_file_in_place_of_the_folder_is_one_line(tmp_path, slash):
  (tmp_path / "f").write_text("mine")
  with (
    pytest.raises(lj.LinearJaxError, match="is a file, not a folder"),
    workdir.workdir_lock(f"{tmp_path / 'f'}{slash}"),
  ):
    pass
  assert (tmp_path / "f").read_text() == "mine"


def test_a_folder_removed_inside_makedirs_is_made_again(tmp_path, monkeypatch):
  """A releasing process may remove the folder between ``mkdir``'s "exists"
  and ``os.makedirs``' own ``isdir`` check, which then raises
  ``FileExistsError`` for a folder that is gone: the lock makes it again.
  """
  folder = tmp_path / "a" / "run"
  makedirs, calls = os.makedirs, []

  def racing_makedirs(name, mode=0o777, exist_ok=False):
    if os.fspath(name) == os.fspath(folder):  # not os.makedirs' recursion
      calls.append(name)
      if len(calls) in (1, 3):  # the first call in _make_dirs and in _acquire
        raise FileExistsError(errno.EEXIST, "File exists", name)
    return makedirs(name, mode, exist_ok)

  monkeypatch.setattr(workdir.os, "makedirs", racing_makedirs)
  with workdir.workdir_lock(folder):
    assert (folder / workdir.LOCK_NAME).exists()
  assert len(calls) == 4  # each race was followed by one more call
  assert not (tmp_path / "a").exists()  # the folders it made are removed


CONTEND = """
import os, sys, time
from linear_jax import LinearJaxError, workdir
folder, owner = sys.argv[1], os.path.join(sys.argv[1], "owner")
held = clashes = 0
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
  try:
    with workdir.workdir_lock(folder):
      held += 1
      if os.path.exists(owner):
        clashes += 1
      with open(owner, "w") as f:
        f.write(str(os.getpid()))
      time.sleep(0.001)
      os.remove(owner)
  except (LinearJaxError, FileNotFoundError):
    pass
print(held, clashes)
"""


@pytest.mark.slow
def test_contending_processes_never_hold_it_together(tmp_path):
  """Three processes take and release the lock as fast as they can, while
  each release unlinks the lock file and may remove the folder: no two ever
  hold it at once (the inode check after flock).
  """
  folder = tmp_path / "contended"
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", CONTEND, str(folder), "3"],
      cwd=REPO,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for _ in range(3)
  ]
  results = []
  for p in procs:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    results.append([int(v) for v in out.split()])
  assert all(clashes == 0 for _, clashes in results), results
  assert sum(held for held, _ in results) > 30, results  # they did contend
