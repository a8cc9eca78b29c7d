"""The CPU benchmark of issue 6, as functions (``experiments/benchmark.py`` is
the binary that calls ``run``).

    from linear_jax import bench
    sections = bench.run(bench.TINY)          # {"machine", "loss", ...}
    print(bench.markdown_table(sections))

Modules, each readable alone:

- ``config``: ``BenchConfig``, its ``FULL`` and ``TINY`` presets, ``SECTIONS``;
- ``runner``: ``run``, the sections in order (ceilings and synthetic data
  shared);
- ``loss_throughput``: section ``loss``, JAX vs NumPy loss + gradient;
- ``epoch_time``: section ``epoch``, one epoch per storage/batch/unroll vs
  its floor;
- ``time_to_accuracy``: section ``accuracy``, seconds to a test accuracy,
  and the scikit-learn / PyTorch peers;
- ``sweep_amortization``: section ``sweep``, K configurations vs one;
- ``numpy_losses``: the NumPy peer, vectorized losses and gradients;
- ``sklearn_peers``, ``torch_peer``: the other peers;
- ``machine``: the device header and the two ceilings;
- ``synthetic``: CIFAR-shaped uint8 data and its two storages;
- ``report``: ``Row``, ``Section``, the markdown table and the JSON file.

Timings use ``linear_jax.benchmarking.median_seconds``: warm-up first,
compilation excluded, ``block_until_ready``, median of repeats.
"""

from linear_jax.bench.config import FULL
from linear_jax.bench.config import SECTIONS
from linear_jax.bench.config import TINY
from linear_jax.bench.config import BenchConfig
from linear_jax.bench.report import Row
from linear_jax.bench.report import Section
from linear_jax.bench.report import markdown_table
from linear_jax.bench.report import notes_text
from linear_jax.bench.report import to_json
from linear_jax.bench.report import write_json
from linear_jax.bench.runner import run
