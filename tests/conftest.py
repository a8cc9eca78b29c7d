"""Shared pytest setup: CPU only, no network, fixed thread use; shared
fixtures (float64, small device data, running the binaries), and the one
rule for float32 tolerances (``f32_tolerance``).
"""

import contextlib
import gc
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# NumPy's and SciPy's OpenBLAS start a thread per core that spins while it
# waits for work; two xdist workers on two cores would each spin one against
# the other's compilations. The suite's NumPy products are small. Set before
# NumPy is imported; the binaries that tests start inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# NumPy asks the kernel for transparent huge pages on every large array
# (madvise). On a VM whose host backs guest memory on first touch, zeroing
# fresh 2 MiB pages made a first write to a 245 MB array take 1-3 s against
# 0.15 s with 4 KiB pages, and put 18 s of system time into two data-heavy
# test files against 7 s without (BENCHMARKS.md). Read when NumPy is
# imported; binaries inherit it. The arrays and results are the same.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

# XLA:CPU compiles the suite's programs with its classic emitters
# (--xla_cpu_use_fusion_emitters=false) and LLVM's -O1
# (--xla_backend_optimization_level=1, against the default -O2), which
# compile faster (BENCHMARKS.md has the suite's times): its programs run
# for milliseconds but compile for seconds. The math is
# the same; the order of float additions may differ, as between two CPUs,
# which every float32 tolerance here allows for. (LLVM's -O0 would compile
# faster still, but XLA then computes some batched float64 programs
# wrongly: test_path's row-space test and test_sweep_blocked's float64 test
# catch it.) The default compiler is what make run, the docs' notebooks and
# the benchmarks use, and what the suite uses with
# LINEAR_JAX_TEST_XLA_DEFAULT=1; an XLA_FLAGS that sets either flag keeps
# its own value. The flags are appended to the caller's XLA_FLAGS (e.g.
# --xla_cpu_max_isa=AVX2) and reach the binaries that tests start.
os.environ["XLA_FLAGS"] = " ".join(
  os.environ.get("XLA_FLAGS", "").split()
  + [
    f"--{name}={value}"
    for name, value in (
      ("xla_cpu_use_fusion_emitters", "false"),
      ("xla_backend_optimization_level", "1"),
    )
    if os.environ.get("LINEAR_JAX_TEST_XLA_DEFAULT") != "1"
    and name not in os.environ.get("XLA_FLAGS", "")
  ]
)

import jax
import numpy as np
import pytest

from linear_jax.objective import objective_terms

# JAX's persistent compilation cache, in a directory made for this run and
# removed after it, so an entry from another run (another JAX, another
# kernel) can never stand in for a compilation. Most of the suite's time is
# XLA compiling the same programs again: in re-created jits, and in every
# binary a subprocess test starts (they inherit these variables). Every
# program is cached, however fast it compiled or small it is. An xdist
# worker finds the variable its controller set and shares the directory.
# The variables reach subprocesses; the config sets the same in this one.
_CACHE_OWNER = "LINEAR_JAX_TEST_CACHE_OWNER"
if os.environ.get(_CACHE_OWNER) is None or not os.path.isdir(
  os.environ.get("JAX_COMPILATION_CACHE_DIR", "")
):
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(
    prefix="linear_jax-test-xla-cache-"
  )
  os.environ[_CACHE_OWNER] = str(os.getpid())
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
jax.config.update(
  "jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"]
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# linear_jax's own cache (decoded image datasets, the fused CPU kernel) is
# the run's too, inside the same directory: the suite never reads or fills
# a user's ~/.cache/linear_jax, and every run decodes and builds afresh
# (the fused kernel once per run: cpu_epoch.build builds under a lock and
# renames a finished build into place, so the xdist workers never build it
# twice or see half a library). Binaries inherit it; a test that needs an
# empty cache sets its own.
RUN_CACHE = os.path.join(os.environ["JAX_COMPILATION_CACHE_DIR"], "linear_jax")
os.environ["LINEAR_JAX_CACHE"] = RUN_CACHE


def pytest_collection_finish(session):
  """Hides what collection imported (JAX, NumPy, scikit-learn, the test
  modules) from the garbage collector: tracing makes many short-lived
  objects, and each full collection would walk all of those again.
  """
  del session
  gc.collect()
  gc.freeze()


def pytest_sessionfinish(session, exitstatus):
  """Removes this run's compilation cache (in the process that made it)."""
  del session, exitstatus
  if os.environ.get(_CACHE_OWNER) == str(os.getpid()):
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


REPO = Path(__file__).resolve().parents[1]
# The shared CIFAR-10 JPEG set: $LINEAR_JAX_CIFAR10_JPEG, else (tests only)
# ../shared/data/ next to the repository.
CIFAR10_JPEG_ENV = "LINEAR_JAX_CIFAR10_JPEG"
DEFAULT_CIFAR10_JPEG = REPO / "../shared/data/cifar10-jpeg.tar.gz"


EPS32 = float(np.finfo(np.float32).eps)  # 2**-23 ≈ 1.19e-7


def f32_tolerance(
  num_terms: int, *, steps: int = 1, factor: float = 10.0
) -> float:
  """Relative disagreement two float32 summation orders may show.

  rtol = factor · eps32 · sqrt(num_terms · steps). A sum or dot of K terms
  rounds to about sqrt(K) · eps32 of Σ|terms| (independent roundings add as a
  random walk; K · eps32 is the worst case); each of S training steps adds
  such an error, which a stable (non-expansive) step carries on without
  growth, so S steps give sqrt(K · S) · eps32. ``factor`` = 10 covers the
  largest of many entries (≈ 4σ) and a 2-3x conditioning margin (momentum,
  cancellation in scores); pass more, with the reason, where a problem is
  worse conditioned. Different CPUs (SSE/AVX/AVX-512 widths, thread
  splits) change the summation order, never the algorithm, so a tolerance
  from this rule holds on all of them while a real bug (a wrong learning
  rate, a missed step, a swapped label) moves results by ≥ 1e-3.

  Args:
    num_terms: K, the length of the longest reduction feeding one result
      (a minibatch gradient sums B rows; a dot sums D features).
    steps: S, the number of training steps the result went through.
    factor: the safety factor above the typical error.

  Returns:
    The relative tolerance, to scale by the magnitude of the summed terms
    (see ``assert_f32_close``).
  """
  return factor * EPS32 * math.sqrt(num_terms * steps)


def assert_f32_close(got, want, rtol: float, *, err_msg: str = ""):
  """Asserts got ≈ want to ``rtol`` of want's largest magnitude.

  Rounding error scales with Σ|terms|, which the largest entry measures, not
  with each entry: a weight near zero carries the same absolute error as
  the largest one.
  """
  want = np.asarray(want, np.float64)
  scale = float(np.max(np.abs(want))) if want.size else 0.0
  np.testing.assert_allclose(
    np.asarray(got, np.float64),
    want,
    rtol=rtol,
    atol=rtol * scale,
    err_msg=err_msg,
  )


def data_loss_atol(
  params, x, y, rtol: float, *, loss: str, margin: float | None = None
) -> float:
  """|Δ data_loss| allowed when the parameters may differ by rtol·max|θ|.

  First order: |ΔL| ≤ ‖∇_θ L‖₁ · max|Δθ|. A relative tolerance alone fails
  near separation: the svm loss is then a few hinge terms 1 + s_j − s_y that
  cancel scores of size ~10 down to ~1e-4, so a 1e-6 change in W is a 1e-5
  change of the loss relative to itself (seen on AVX-512 CPUs).
  """
  options = {} if margin is None else {"margin": margin}  # None: softmax
  grad = jax.grad(
    lambda q: objective_terms(q, x, y, loss=loss, **options)["data_loss"]
  )(params)
  scale = max(float(np.abs(v).max()) for v in jax.tree.leaves(params))
  return sum(float(np.abs(g).sum()) for g in jax.tree.leaves(grad)) * (
    rtol * scale
  )


@pytest.fixture
def x64():
  """Runs a test with float64 enabled (gradient checks), then restores."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="session")
def cifar10_jpeg_archive() -> Path:
  """Path of the shared CIFAR-10 JPEG archive; skips the test where absent."""
  path = Path(os.environ.get(CIFAR10_JPEG_ENV) or DEFAULT_CIFAR10_JPEG)
  if not path.is_file():
    pytest.skip(
      f"{path} is absent (set {CIFAR10_JPEG_ENV}); the tfds "
      "dataset 'cifar10' is the alternative"
    )
  return path.resolve()


@pytest.fixture
def device_blobs():
  """Three well-separated Gaussian blobs ``[600, 5]`` as ``DeviceData``:
  500 train, 100 validation rows.
  """
  seed, n, d, c = 0, 600, 5, 3
  import numpy as np

  from linear_jax.train import DeviceData

  rng = np.random.default_rng(seed)
  centres = 3 * rng.normal(size=(c, d))
  y = rng.integers(0, c, size=n)
  x = centres[y] + rng.normal(size=(n, d))
  return DeviceData.put(x[:500], y[:500], x[500:], y[500:])


def slow_except(cases, *fast):
  """Parametrize ``cases`` with all but the ``fast`` ones marked slow.

  ``make test`` runs every case; ``make test-fast`` (``-m "not slow"``) only
  the ``fast`` ones, which still exercise the code under test. A case is a
  value, a tuple of values (one per argname) or a ``pytest.param``; ``fast``
  names cases the same way.
  """
  marked = []
  for case in cases:
    if isinstance(case, type(pytest.param(None))):
      values, marks, id_ = case.values, tuple(case.marks), case.id
    elif isinstance(case, tuple):
      values, marks, id_ = case, (), None
    else:
      values, marks, id_ = (case,), (), None
    key = values[0] if len(values) == 1 else values
    if key not in fast:
      marks += (pytest.mark.slow,)
    marked.append(pytest.param(*values, marks=marks, id=id_))
  missing = set(fast) - {
    c.values[0] if len(c.values) == 1 else c.values for c in marked
  }
  assert not missing, f"slow_except: {missing} are not cases"
  return marked


def free_port() -> int:
  """A TCP port on localhost that is free now (for a jax.distributed
  coordinator).
  """
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_processes(commands, *, env, timeout):
  """Starts every command at once (the processes of one jax.distributed
  job), waits for all, kills the rest if one hangs; asserts each exits 0.

  Returns:
    ``[(stdout, stderr)]``, one per command.
  """
  procs = [
    subprocess.Popen(
      command,
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for command in commands
  ]
  outputs = []
  try:
    for p in procs:
      outputs.append(p.communicate(timeout=timeout))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (_, err) in zip(procs, outputs, strict=True):
    assert p.returncode == 0, err[-3000:]
  return outputs


# Variables that imports inside tests add to this process's environment
# for good: TensorFlow's, once a tfds test has imported it, and JAX's Mosaic
# GPU root, once Pallas is imported. A binary does not inherit them where
# they were set or changed after the session started: a fresh process has
# not made those imports (it sets them itself when it makes them), and a
# binary whose environment differed in them could not run in the fork
# server. Every other variable in this process's environment is passed on.
IMPORT_ADDED = (
  "TF2_BEHAVIOR",
  "TPU_ML_PLATFORM",
  "TPU_SKIP_MDS_QUERY",
  "KMP_",
  "HDF5_PLUGIN_PATH",
  "ENABLE_RUNTIME_UPTIME_TELEMETRY",
  "MOSAIC_GPU_CUDA_ROOT",
)
_SESSION_ENV = dict(os.environ)


def binary_env(**extra):
  """The environment of a binary a test starts: this one's (less what
  imports added, ``IMPORT_ADDED``), on the CPU, without TensorFlow's C++
  log lines, plus ``extra``.
  """
  env = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(IMPORT_ADDED) or _SESSION_ENV.get(k) == v
  }
  return dict(env, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", **extra)


def run_binary_processes(module, args, *, num_processes=2, timeout=300):
  """``python -m module`` as the processes of one ``jax.distributed`` job on
  localhost (CPU collectives: gloo): process i gets ``args(i)`` and its
  ``--num_processes``, ``--process_id`` and ``--coordinator_address``.

  Returns:
    ``[(stdout, stderr)]``, one per process (each asserted to exit 0).
  """
  address = f"localhost:{free_port()}"
  env = binary_env()
  return run_processes(
    [
      [
        sys.executable,
        "-m",
        module,
        *args(i),
        f"--num_processes={num_processes}",
        f"--process_id={i}",
        f"--coordinator_address={address}",
      ]
      for i in range(num_processes)
    ],
    env=env,
    timeout=timeout,
  )


_FORK_SERVER = []  # this test process's forkserver.ForkServer, once started


def _fork_server(env):
  """This process's fork server (started on first use), or None where a
  request must run as a real subprocess (see tests/forkserver.py): when it
  is turned off, when coverage follows subprocesses (a fork would not start
  it), or when the server could not start.
  """
  if os.environ.get("LINEAR_JAX_TEST_FORKSERVER") == "0" or any(
    k.startswith("COV_CORE_") for k in os.environ
  ):
    return None
  from forkserver import ForkServer  # pylint: disable=g-import-not-at-top

  if _FORK_SERVER == [None]:
    return None  # it failed to start once: real subprocesses from now on
  if not _FORK_SERVER or _FORK_SERVER[0].proc.poll() is not None:
    try:
      _FORK_SERVER[:] = [ForkServer(str(REPO), binary_env())]
    except Exception as e:  # noqa: BLE001 - the subprocess path still works
      warnings.warn(
        f"the fork server did not start ({e}); binaries run as subprocesses",
        stacklevel=2,
      )
      _FORK_SERVER[:] = [None]
      return None
  server = _FORK_SERVER[0]
  return server if server.can_run(env, str(REPO)) else None


def pytest_unconfigure(config):
  """Stops this process's fork server."""
  del config
  for server in _FORK_SERVER:
    if server is not None:
      server.close()


def run_binary(module, *args, timeout=240, env=None, fresh=False):
  """Runs ``python -m module *args`` from the repository root on the CPU, as
  a user would; returns the ``CompletedProcess`` (text stdout/stderr).

  The binary runs in a fork of a Python that has imported JAX already
  (tests/forkserver.py), which saves each start about a second; a request
  the server cannot run as a fresh process would, one made while another
  thread's is running, and one with ``fresh`` (a run whose results another
  is compared with: forks share the server's hash seed) start a real
  subprocess.
  """
  env = binary_env(**(env or {}))
  server = None if fresh else _fork_server(env)
  if server is not None and server.lock.acquire(blocking=False):
    try:
      return server.run(module, args, env=env, timeout=timeout)
    finally:
      server.lock.release()
  return subprocess.run(
    [sys.executable, "-m", module, *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.fixture(scope="session")
def run_module():
  """``run_binary``, for tests: ``run_module("experiments.train", ...)``."""
  return run_binary


def load_error(name: str, **kwargs) -> str:
  """The one-line ``LinearJaxError`` message of ``load_dataset(name, ...)``."""
  from linear_jax.checks import LinearJaxError  # pylint: disable=g-import-not-at-top
  from linear_jax.data import load_dataset  # pylint: disable=g-import-not-at-top

  with pytest.raises(LinearJaxError) as e:
    load_dataset(name, **kwargs)
  message = str(e.value)
  assert "\n" not in message
  return message


@contextlib.contextmanager
def held_lock(path, *, output=False):
  """Another process holding ``linear_jax.workdir``'s lock on ``path`` (a
  workdir; an output file with ``output``) until the block ends; yields
  its PID.
  """
  function = "output_lock" if output else "workdir_lock"
  code = (
    "import sys\n"
    "from linear_jax import workdir\n"
    f"with workdir.{function}(sys.argv[1]):\n"
    "  print('locked', flush=True)\n"
    "  sys.stdin.read()\n"
  )
  proc = subprocess.Popen(
    [sys.executable, "-c", code, str(path)],
    cwd=REPO,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert proc.stdout.readline().strip() == "locked"
    yield proc.pid
  finally:
    proc.stdin.close()
    proc.wait(timeout=60)
    proc.stdout.close()


@pytest.fixture(scope="session")
def lock_holder():
  """``held_lock`` as a fixture, for tests in any file."""
  return held_lock
