"""tfds datasets under ``tfds.testing.mock_data``: nothing is ever downloaded.

Importing TensorFlow takes ~5-10 s on 2 cores; it happens once, in the first
test here that needs it. The tests without TensorFlow run a binary in a
subprocess whose ``sitecustomize`` makes importing ``tensorflow`` or
``tensorflow_datasets`` raise ImportError, as on a core install.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from linear_jax import LinearJaxError, data

REPO = Path(__file__).resolve().parents[1]
BLOCK_TENSORFLOW = """
import sys

class _BlockTensorFlow:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
      raise ImportError(f"No module named {name!r} (blocked by the test)")
    return None

sys.meta_path.insert(0, _BlockTensorFlow())
"""


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def without_tensorflow(tmp_path):
  """Environment of a subprocess in which TensorFlow cannot be imported."""
  hook = tmp_path / "hook"
  hook.mkdir()
  (hook / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join([str(hook), str(REPO)]),
    JAX_PLATFORMS="cpu",
  )
  # Without the suite's compilation cache: reading it, JAX's path library
  # asks importlib.util.find_spec whether TensorFlow is installed, which the
  # hook answers by raising (an uninstalled TensorFlow answers None).
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  return env


def run_blocked(env, *args, timeout=300):
  return subprocess.run(
    [sys.executable, *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.mark.slow
def test_importing_the_data_package_does_not_import_tensorflow():
  code = (
    "import sys, linear_jax.data; "
    "assert 'tensorflow' not in sys.modules, 'tf imported eagerly'"
  )
  subprocess.run([sys.executable, "-c", code], check=True)


def test_the_block_really_blocks(without_tensorflow):
  """Guards the two tests below: the hook must make the import fail."""
  result = run_blocked(without_tensorflow, "-c", "import tensorflow_datasets")
  assert result.returncode == 1 and "blocked by the test" in result.stderr


@pytest.mark.slow
def test_digits_trains_without_tensorflow(without_tensorflow, tmp_path):
  result = run_blocked(
    without_tensorflow,
    "-m",
    "experiments.train",
    "--dataset=digits",
    "--epochs=1",
    "--plots=false",
    f"--workdir={tmp_path / 'run'}",
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "run" / "summary.json").is_file()


def test_tfds_name_without_tensorflow_names_the_extra(
  without_tensorflow, tmp_path
):
  result = run_blocked(
    without_tensorflow,
    "-m",
    "experiments.train",
    "--dataset=cifar10",
    "--epochs=1",
    f"--workdir={tmp_path / 'run'}",
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
  assert 'pip install "linear_jax[tfds]"' in lines[0]
  assert "'cifar10'" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
  "name, image_shape",
  [
    ("cifar10", (32, 32, 3)),
    ("mnist", (28, 28, 1)),
  ],
)
def test_mocked_tfds_dataset(tfds, name, image_shape, tmp_path):
  with tfds.testing.mock_data(num_examples=30):
    ds = data.load_dataset(name, data_dir=tmp_path, subtract_mean=False)
  d = int(np.prod(image_shape))
  # Mocked train and test both have 30 examples; the default validation
  # (CIFAR-10 1,000, MNIST 5,000) is capped at 20 % of train: 6.
  assert ds.x_train.shape == (24, d) and ds.x_val.shape == (6, d)
  assert ds.x_test.shape == (30, d)
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  assert ds.image_shape == image_shape and ds.num_classes == 10
  assert len(ds.class_names) == 10 and ds.name == name
  for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
    assert x.min() >= 0 and x.max() <= 255 and np.all(x == np.round(x))
    assert x.std() > 10  # random pixels, not zeros
    assert y.min() >= 0 and y.max() < 10


@pytest.mark.slow
def test_mocked_tfds_prefix_and_options(tfds, tmp_path):
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load_dataset(
      "tfds:fashion_mnist",
      data_dir=tmp_path,
      validation_size=5,
      bias_column=True,
      seed=1,
    )
  assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (15, 5, 20)
  assert ds.num_features == 28 * 28 + 1 and np.all(ds.x_test[:, -1] == 1)
  assert ds.class_names[0] == "T-shirt/top"
  # float64 mean of centered pixels (|x| ≤ 255): storage rounding ≤ 1.5e-5.
  np.testing.assert_allclose(
    ds.x_train[:, :-1].mean(0, dtype=np.float64), 0, atol=1e-3
  )


@pytest.mark.slow
def test_unprepared_dataset_fails_fast_without_downloading(
  tfds, tmp_path, monkeypatch
):
  def no_download(*args, **kwargs):
    raise AssertionError("download_and_prepare must not be called")

  monkeypatch.setattr(
    tfds.core.DatasetBuilder, "download_and_prepare", no_download
  )
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset("cifar10", data_dir=tmp_path / "tfds")
  message = str(e.value)
  assert "\n" not in message and "not prepared" in message
  assert (
    f"{tmp_path / 'tfds'}" in message and "download_and_prepare()" in message
  )
  assert "folder:PATH" in message


@pytest.mark.slow
def test_tfds_data_dir_env_is_honoured(tfds, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset("mnist")
  assert f"not prepared in {tmp_path / 'from_env'}" in str(e.value)


@pytest.mark.slow
def test_tfds_dataset_without_images_is_refused(tfds, tmp_path):
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset("tfds:imdb_reviews", data_dir=tmp_path)
  assert "needs 'image' and 'label'" in str(e.value)


@pytest.mark.slow
def test_unknown_tfds_name(tfds, tmp_path):
  with pytest.raises(LinearJaxError) as e:
    data.load_dataset("tfds:no_such_dataset_xyz", data_dir=tmp_path)
  assert "tfds has no dataset 'no_such_dataset_xyz'" in str(e.value)
