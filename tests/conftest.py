"""Shared pytest setup: CPU only, no network, fixed thread use; shared
fixtures (float64, small device data, running the binaries)."""
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]
# The shared CIFAR-10 JPEG set: $LINEAR_JAX_CIFAR10_JPEG, else (tests only)
# ../shared/data/ next to the repository.
CIFAR10_JPEG_ENV = "LINEAR_JAX_CIFAR10_JPEG"
DEFAULT_CIFAR10_JPEG = REPO / "../shared/data/cifar10-jpeg.tar.gz"


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
    pytest.skip(f"{path} is absent (set {CIFAR10_JPEG_ENV}); the tfds "
                "dataset 'cifar10' is the alternative")
  return path.resolve()


@pytest.fixture
def device_blobs():
  """Three well-separated Gaussian blobs ``[600, 5]`` as ``DeviceData``:
  500 train, 100 validation rows."""
  seed, n, d, c = 0, 600, 5, 3
  import numpy as np
  from linear_jax.train import DeviceData
  rng = np.random.default_rng(seed)
  centres = 3 * rng.normal(size=(c, d))
  y = rng.integers(0, c, size=n)
  x = centres[y] + rng.normal(size=(n, d))
  return DeviceData.put(x[:500], y[:500], x[500:], y[500:])



def run_binary(module, *args, timeout=240, env=None):
  """Runs ``python -m module *args`` from the repository root on the CPU, as
  a user would; returns the ``CompletedProcess`` (text stdout/stderr)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
             **(env or {}))
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                        env=env, capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope="session")
def run_module():
  """``run_binary``, for tests: ``run_module("experiments.train", ...)``."""
  return run_binary
