"""Training rows on devices: one device, or sharded over processes.

The λ path reads its rows through ``lax.scan`` passes
(``linear_jax.row_blocks``) that return sums. Data parallel over P
processes (``jax.distributed``, set up by
``linear_jax.sweep.distributed.initialize``), process p holds only rows
``row_range(N, P, p)`` of each split, on its first local device; a pass runs
on every process's shard at once (``shard_map`` over the mesh axis
``"rows"``) and its sums are added across processes (``lax.psum``), so every
process then takes the same L-BFGS step on the same, replicated, parameters.
One process is the same program on a one-device mesh.

Shards must have one shape on every process: a shorter one is padded with
masked rows (``count`` says how many are real). ``row_range`` splits N
evenly, so only when P does not divide N do some shards carry one padding
row (then that shard is copied once). ``read_shard`` fills an aligned buffer
from a reader of row ranges, so that the rows reach the device without a
copy (``to_device``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from linear_jax.checks import LinearJaxError

AXIS = "rows"
# XLA:CPU aliases (does not copy) host arrays whose data start on a 64-byte
# boundary; numpy's allocator guarantees only 16.
ALIGNMENT = 64


def row_range(
  num_rows: int,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> tuple[int, int]:
  """Rows ``[start, stop)`` of process ``process_id`` among ``num_processes``.

  Even split: the first N mod P processes get one row more. Defaults: this
  process (``jax.process_index()``) among ``jax.process_count()``.
  """
  p = jax.process_count() if num_processes is None else int(num_processes)
  i = jax.process_index() if process_id is None else int(process_id)
  if not 0 <= i < p:
    raise LinearJaxError(f"process_id must lie in [0, {p}), got {i}")
  base, extra = divmod(int(num_rows), p)
  start = i * base + min(i, extra)
  return start, start + base + (i < extra)


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
  """An uninitialized array whose data start on an ``ALIGNMENT`` boundary."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape)) * dtype.itemsize
  raw = np.empty(size + ALIGNMENT, np.uint8)
  offset = (-raw.ctypes.data) % ALIGNMENT
  return raw[offset : offset + size].view(dtype).reshape(shape)


def read_shard(
  read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
  num_rows: int,
  *,
  num_processes: int | None = None,
  process_id: int | None = None,
  chunk_rows: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
  """This process's rows of a split, read chunk by chunk into aligned arrays.

  Args:
    read_rows: ``(start, stop) -> (x [stop − start, D], y [stop − start])``,
      reading only those rows (e.g. from a memory-mapped file).
    num_rows: N of the whole split.
    num_processes: P (default ``jax.process_count()``).
    process_id: p (default ``jax.process_index()``).
    chunk_rows: rows per call of ``read_rows`` (the peak beyond the shard).

  Returns:
    ``(x [n, D], y [n])`` for ``(start, stop) = row_range(...)``, x in the
    dtype ``read_rows`` returns.
  """
  start, stop = row_range(num_rows, num_processes, process_id)
  x: np.ndarray | None = None
  y: np.ndarray | None = None
  for a in range(start, max(stop, start + 1), chunk_rows):
    b = min(a + chunk_rows, stop)
    xa, ya = read_rows(a, b)
    xa, ya = np.asarray(xa), np.asarray(ya)
    if x is None or y is None:
      x = aligned_empty((stop - start,) + xa.shape[1:], xa.dtype)
      y = np.empty((stop - start,), ya.dtype)
    x[a - start : b - start] = xa
    y[a - start : b - start] = ya
  assert x is not None and y is not None  # the loop runs at least once
  return x, y


def total(values) -> np.ndarray:
  """``values`` (float64) added over all processes, the same on every one.

  Every process passes an array of one shape (its partial sums, counts);
  the bytes are gathered exactly (not as JAX's float32) and added in process
  order. One process: ``values`` itself.
  """
  values = np.ascontiguousarray(values, np.float64)
  if jax.process_count() == 1:
    return values
  bits = values.reshape(-1).view(np.int32)
  gathered = np.ascontiguousarray(multihost_utils.process_allgather(bits))
  return gathered.view(np.float64).sum(axis=0).reshape(values.shape)


def raise_together(failure: Exception | None, elsewhere: str) -> None:
  """Raises on every process when any process failed a check of its own
  rows or files: ``failure`` where it happened, ``LinearJaxError(elsewhere)``
  on the others, so that none is left waiting in a collective.
  """
  if total([failure is not None])[0]:
    raise failure or LinearJaxError(elsewhere)


def row_mesh(sharded: bool) -> Mesh:
  """The mesh a pass runs on: one device per process (sharded), else one."""
  if not sharded:
    return Mesh(np.asarray(jax.devices()[:1]), (AXIS,))
  first: dict[int, jax.Device] = {}
  for d in jax.devices():
    first.setdefault(d.process_index, d)
  return Mesh(np.asarray([first[p] for p in sorted(first)]), (AXIS,))


def to_device(x, device: jax.Device) -> jax.Array:
  """A host array on ``device``, without a copy where XLA can alias it.

  ``jax.device_put(..., may_alias=True)`` of a C-contiguous, 64-byte aligned
  numpy array on a CPU device shares its memory (``aligned_empty``); other
  arrays are copied once.
  """
  if isinstance(x, jax.Array):
    return jax.device_put(x, device)
  return jax.device_put(np.asarray(x), device, may_alias=True)


@dataclasses.dataclass(frozen=True)
class Rows:
  """One split on the mesh: ``x`` ``[P·n, D]`` and ``y`` ``[P·n]`` sharded by
  rows, ``count`` ``[P]`` real rows per shard, ``num_rows`` their total.
  """

  x: jax.Array
  y: jax.Array
  count: jax.Array
  num_rows: int


def local_counts(num_local: int, mesh: Mesh) -> list[int]:
  """Every process's row count (the same list on every process)."""
  if mesh.devices.size == 1:
    return [int(num_local)]
  gathered = multihost_utils.process_allgather(np.asarray([num_local]))
  return [int(c) for c in np.asarray(gathered).reshape(-1)]


def put_rows(x, y, mesh: Mesh) -> Rows:
  """This process's rows ``x [n, D]``, ``y [n]`` -> ``Rows`` on ``mesh``.

  Shards shorter than the longest are padded (a copy of that shard).
  """
  counts = local_counts(x.shape[0], mesh)
  length = max(max(counts), 1)
  (device,) = [
    d for d in mesh.devices.flat if d.process_index == jax.process_index()
  ]
  if x.shape[0] < length:
    pad = aligned_empty((length,) + tuple(x.shape[1:]), x.dtype)
    pad[: x.shape[0]] = np.asarray(x)
    pad[x.shape[0] :] = 0
    x = pad
    y = np.concatenate([np.asarray(y), np.zeros(length - len(y), y.dtype)])
  sharding = NamedSharding(mesh, P(AXIS))
  p = mesh.devices.size

  def global_array(local):
    arr = to_device(local, device)
    return jax.make_array_from_single_device_arrays(
      (p * local.shape[0],) + tuple(local.shape[1:]), sharding, [arr]
    )

  return Rows(
    x=global_array(x),
    y=global_array(np.asarray(y, np.int32)),
    count=global_array(np.asarray([counts[jax.process_index()]], np.int32)),
    num_rows=int(sum(counts)),
  )
