"""Benchmarks of linear_jax against its peers; not part of the installed package.

Run from the repository root: ``python -m benchmarks.cpu`` (``make bench``)
and ``python -m benchmarks.gpu``. ``sections`` holds what both run,
``timing`` the one timing helper, ``peers`` NumPy, scikit-learn and PyTorch,
``report`` the table and JSON; raw logs of past runs are in ``results/``.
"""
