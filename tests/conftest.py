"""Shared pytest setup: CPU only, no network, fixed thread use."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import jax
import pytest

# The shared CIFAR-10 JPEG set: $LINEAR_JAX_CIFAR10_JPEG, else (tests only)
# ../shared/data/ next to the repository.
CIFAR10_JPEG_ENV = "LINEAR_JAX_CIFAR10_JPEG"
DEFAULT_CIFAR10_JPEG = (Path(__file__).resolve().parents[1] /
                        "../shared/data/cifar10-jpeg.tar.gz")


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
