"""Devices and processes: one mesh axis "config", data replicated, gathers.

Single host: the mesh spans ``jax.devices()`` (all local devices). Several
hosts: every process runs the same program on the same inputs after
``initialize`` (``jax.distributed.initialize``, called before any other JAX
work); ``jax.devices()`` is then global, so the same mesh and shardings span
every process's devices. Stacked configuration arrays (params, optimizer
state, ``HyperParams``, metrics: leading axis ``[K]``) are split over the
"config" axis with ``NamedSharding(mesh, P("config"))``; the data, the
permutation key and the step counter are replicated with
``NamedSharding(mesh, P())``. Each device therefore trains K/n
configurations on its own full copy of the data, with no communication
inside an epoch; ``to_host`` gathers the per-configuration results
(``process_allgather`` across processes), identical on every process.
Only ``is_writer()`` (process 0) writes files, under ``writer_lock``.

A binary's config takes the process flags by deriving from
``ProcessOptions`` (``--num_processes``, ``--process_id``,
``--coordinator_address``), whose ``initialize`` starts the job.
"""

from __future__ import annotations

import contextlib
import dataclasses

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from linear_jax.checks import LinearJaxError, option
from linear_jax.workdir import workdir_lock

AXIS = "config"


def initialize(
  coordinator_address: str | None, num_processes: int, process_id: int
) -> bool:
  """``jax.distributed.initialize`` when ``num_processes`` > 1; else nothing.

  Must run before any JAX computation. On CPU the cross-process collectives
  are gloo (JAX's default ``jax_cpu_collectives_implementation``).

  Returns:
    True when a multi-process run was initialized.
  """
  if num_processes < 1:
    raise LinearJaxError(f"--num_processes must be ≥ 1, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise LinearJaxError(
      f"--process_id must lie in [0, {num_processes}), got {process_id}"
    )
  if num_processes == 1:
    return False
  if not coordinator_address:
    raise LinearJaxError(
      "--num_processes > 1 needs --coordinator_address=HOST:PORT (the "
      "address of process 0, the same for every process)"
    )
  jax.distributed.initialize(
    coordinator_address=coordinator_address,
    num_processes=num_processes,
    process_id=process_id,
  )
  return True


@dataclasses.dataclass(kw_only=True)
class ProcessOptions:
  """The fields of a multi-process run, one set of flags for every binary
  whose config derives from this (checked by ``initialize``, in one line).
  """

  num_processes: int = option(1, "multi-process: number of processes")
  process_id: int = option(0, "multi-process: this process, 0..n-1")
  coordinator_address: str | None = option(
    None, "multi-process: HOST:PORT of process 0 (same everywhere)"
  )

  def initialize(self) -> bool:
    """``initialize`` with these fields (before any other JAX work)."""
    return initialize(
      self.coordinator_address, self.num_processes, self.process_id
    )

  def check_started(self) -> None:
    """Refuses to run when ``jax.distributed`` was not started with
    ``num_processes`` processes (``initialize`` was not called).
    """
    if jax.process_count() != self.num_processes:
      raise LinearJaxError(
        f"num_processes={self.num_processes} but JAX runs "
        f"{jax.process_count()} process(es); call initialize() (or "
        "linear_jax.sweep.distributed.initialize) before any JAX work"
      )


@contextlib.contextmanager
def writer_lock(workdir: str):
  """``linear_jax.workdir.workdir_lock`` held by the writing process.

  Only process 0 writes, so only it locks (the other processes may share
  its folder, or have none); every process learns whether it got the lock,
  so that all stop together when another run holds the workdir.
  """
  with contextlib.ExitStack() as stack:
    failure = None
    if is_writer():
      try:
        stack.enter_context(workdir_lock(workdir))
      except (LinearJaxError, OSError) as e:  # in use, or not creatable
        failure = e
    if not agree(failure is None):
      if failure is not None:
        raise failure
      raise LinearJaxError(
        f"process 0 could not lock --workdir {workdir} (it says why); "
        "nothing was written"
      )
    yield


def config_mesh(devices=None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all, global) with axis "config"."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (AXIS,))


def config_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the devices: stacked ``[K, ...]`` arrays."""
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device: data, keys, step counters."""
  return NamedSharding(mesh, P())


def put_global(value, sharding: NamedSharding) -> jax.Array:
  """A host array -> a global ``jax.Array`` laid out as ``sharding``.

  Every process passes the same ``value``; each fills only its own devices
  (``make_array_from_callback``), so this works on one host or many.
  """
  value = np.asarray(value)
  return jax.make_array_from_callback(
    value.shape, sharding, lambda index: value[index]
  )


def put_rows(x, sharding: NamedSharding):
  """Host feature rows -> global float32 rows laid out as ``sharding``:
  ``[N, D]`` arrays, or ``scipy.sparse`` rows as ``sparse.CSRRows``.
  """
  from linear_jax import sparse  # pylint: disable=g-import-not-at-top

  if not sparse.is_sparse(x):
    return put_global(np.asarray(x, np.float32), sharding)
  return sparse.to_device(
    sparse.as_csr(x, "x"), put=lambda a: put_global(a, sharding)
  )


def to_host(tree):
  """Global arrays -> numpy, the whole array on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def replicated_to_host(tree):
  """Fully replicated global arrays -> numpy, from a local copy (no gather)."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def agree(value: bool) -> bool:
  """Process 0's ``value`` on every process (so all take the same branch)."""
  if jax.process_count() == 1:
    return bool(value)
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(value)))


def from_writer(value: int) -> int:
  """Process 0's integer ``value`` on every process."""
  if jax.process_count() == 1:
    return int(value)
  return int(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int64)))


def is_writer() -> bool:
  """True on the one process that writes files (process 0)."""
  return jax.process_index() == 0


def device_descriptions(mesh: Mesh | None = None) -> list[dict]:
  """One dict per device of the mesh: id, platform, kind, process."""
  devices = list(mesh.devices.flat) if mesh is not None else jax.devices()
  return [
    {
      "id": d.id,
      "platform": d.platform,
      "kind": d.device_kind,
      "process": d.process_index,
    }
    for d in devices
  ]
