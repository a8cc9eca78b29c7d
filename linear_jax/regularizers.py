"""Regularization penalties R(W) of the full loss L = (1/N) Σ L_i + λ R(W).

Each maps a weight matrix ``W [D, C]`` to a scalar. ``REGULARIZERS`` maps
``"l2"``, ``"l1"``, ``"elastic_net"`` and ``"none"`` to them. The bias ``b`` is
not regularized unless ``objective(..., regularize_bias=True)``. In the
bias-trick form the folded bias row is part of ``W`` and so is regularized,
as in the lecture's examples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from linear_jax import checks


def l2_penalty(w: ArrayLike) -> jax.Array:
  """R(W) = Σ_k Σ_l W_{k,l}², the lecture's L2 (no ½).

  This is ‖W‖²_F, i.e. twice the ½‖W‖² that scikit-learn and many texts use:
  λ·ΣW² here equals (2λ)·½‖W‖² there. Gradient: 2W.
  """
  return jnp.sum(jnp.square(w))


def l1_penalty(w: ArrayLike) -> jax.Array:
  """R(W) = Σ_k Σ_l |W_{k,l}|. Sub-gradient: sign(W) (0 at 0)."""
  return jnp.sum(jnp.abs(w))


def elastic_net_penalty(
  w: ArrayLike, *, l1_ratio: ArrayLike = 0.5
) -> jax.Array:
  """R(W) = ρ Σ|W| + (1 − ρ) ΣW², with ρ = ``l1_ratio`` in [0, 1] (default ½)."""
  rho = jnp.asarray(l1_ratio)
  return rho * l1_penalty(w) + (1.0 - rho) * l2_penalty(w)


def no_penalty(w: ArrayLike) -> jax.Array:
  """R(W) = 0."""
  return jnp.zeros((), jnp.result_type(w))


#: Regularizer name -> R(W), a scalar of ``W [D, C]``.
REGULARIZERS = {
  "l2": l2_penalty,
  "l1": l1_penalty,
  "elastic_net": elastic_net_penalty,
  "none": no_penalty,
}


def get_regularizer(name: str):
  """``REGULARIZERS[name]``, or a one-line error listing the valid names."""
  return checks.lookup(REGULARIZERS, name, "regularizer")


def penalty(
  params: dict,
  reg: str,
  *,
  l1_ratio: ArrayLike = 0.5,
  regularize_bias: bool = False,
) -> jax.Array:
  """R(params): R(W), plus R(b) when ``regularize_bias`` and ``"b"`` exists."""
  fn = get_regularizer(reg)
  kwargs = {"l1_ratio": l1_ratio} if reg == "elastic_net" else {}
  total = fn(params["W"], **kwargs)
  if regularize_bias and "b" in params:
    total = total + fn(params["b"], **kwargs)
  return total
