r"""The GPU benchmark: the CPU script's sections on a GPU, plus the blocked
sweep and the Pallas epoch, at GPU sizes (``sections.GPU``).

Needs JAX with CUDA; PyTorch (optional peer) and scikit-learn; no
TensorFlow: the CIFAR-10 JPEG set (``cifar10_jpeg``, split 49,000 / 1,000 /
10,000 as on the CPU) is read by the library's folder source from the archive
that ``LINEAR_JAX_CIFAR10_JPEG`` names.
Precision: XLA's default float32 matmul precision, which is TF32 on
H100/H200; the PyTorch peer likewise (``allow_tf32``). From the repository
root:

  LINEAR_JAX_CIFAR10_JPEG=PATH/cifar10-jpeg.tar.gz python -m benchmarks.gpu \
      --out=$OUT/gpu.json
  python -m benchmarks.gpu --sections=epoch,sweep        # speed rows only
  python -m benchmarks.gpu --sections=blocked --block_steps=4,8,16
  python -m benchmarks.gpu --sections=pallas

Every flag of ``benchmarks/cpu.py`` applies (``--help``); ``--tiny`` runs
every section in seconds, also on a CPU (the smoke test; ``pallas`` is then
skipped with a note).
"""

from __future__ import annotations

from absl import flags

from benchmarks import cpu, sections
from experiments import cli

flags.FLAGS.set_default("sections", list(sections.GPU.sections))
flags.FLAGS.set_default("out", "runs/benchmark/gpu.json")


def main(argv):
  """Runs the GPU sections and writes the JSON report."""
  del argv
  cpu.run(sections.GPU, "python -m benchmarks.gpu")


if __name__ == "__main__":
  cli.start(main)
