"""One softmax-SGD epoch as a single Pallas (Triton) kernel, W kept on-chip.

XLA runs an epoch of B = 256 minibatches as ~200 dependent loop iterations of
several kernels each, so on a GPU it is bound by launch and loop latency,
far above the time to read the data once (BENCHMARKS.md has the
measurements). This kernel runs the whole epoch
in one launch. Each of P programs owns a slice of DS = D / P features: it
keeps W[slice] ``[DS, Cp]`` and its momentum in registers, and per step

1. gathers its columns of the minibatch, x_b[:, slice] ``[B, DS]``;
2. adds its partial scores x_b[:, slice] · W[slice] into a per-step buffer
   in global memory with float atomics (into one of G copies, to spread the
   contention; the reader sums the copies);
3. waits at a grid-wide barrier (an atomic counter per step, spun on);
4. reads the full scores s ``[B, Cp]`` (volatile, past L1), computes the
   softmax gradient dS = (softmax(s) − onehot(y)) / B, identically in every
   program, and updates W[slice] −= lr·(trace), trace = g + μ·trace with
   g = x_b[:, slice]ᵀ dS + 2λW[slice] (optax's ``sgd(momentum=μ)``); b too.

All P programs must be resident at once (P ≤ the number of SMs), or the
barrier deadlocks. Classes are padded to Cp = 16 (masked to −inf). TF32 dots.
This is a benchmark fast path for (softmax, L2, momentum, constant rate);
``linear_jax.train.train_epoch`` is the general implementation it is checked against.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

PADDED_CLASSES = 16


def _kernel(
  perm_ref,
  y_ref,
  x_ref,
  w_ref,
  b_ref,
  hp_ref,
  scores_in,
  count_in,
  w_out,
  b_out,
  scores_ref,
  count_ref,
  *,
  num_classes,
  slice_size,
  steps,
  batch,
  spin,
  cosine,
  groups,
):
  del scores_in, count_in  # aliased to scores_ref / count_ref
  p = pl.program_id(0)
  num_programs = pl.num_programs(0)
  cols = pl.ds(p * slice_size, slice_size)
  w = w_ref[cols, :]
  b = b_ref[:]
  lr, mom, lam = hp_ref[0], hp_ref[1], hp_ref[2]
  class_ids = jax.lax.broadcasted_iota(jnp.int32, (batch, PADDED_CLASSES), 1)
  valid = class_ids < num_classes

  def step(s, carry):
    w, b, vw, vb = carry
    idx = perm_ref[s, :]
    xs = x_ref[idx, cols]  # [B, DS]
    partial = jnp.dot(xs, w)  # [B, Cp]
    # Programs add into one of `groups` copies: fewer atomics per address.
    plt.atomic_add(
      scores_ref, (s, p % groups, slice(None), slice(None)), partial
    )
    if spin:  # (the interpreter runs programs one by one: nothing to wait for)
      plt.debug_barrier()  # every thread's adds before the arrival below
    plt.atomic_add(count_ref, (s,), jnp.int32(1))
    if spin:
      jax.lax.while_loop(
        lambda c: c < num_programs,
        lambda c: plt.atomic_add(count_ref, (s,), jnp.int32(0)),
        plt.atomic_add(count_ref, (s,), jnp.int32(0)),
      )
    scores = jnp.sum(plt.load(scores_ref.at[s], volatile=True), axis=0)
    scores = scores + b[None, :]
    scores = jnp.where(valid, scores, -jnp.inf)
    scores = scores - jnp.max(scores, axis=1, keepdims=True)
    e = jnp.exp(scores)
    probs = e / jnp.sum(e, axis=1, keepdims=True)
    labels = y_ref[idx]
    onehot = (class_ids == labels[:, None]).astype(jnp.float32)
    dscores = (probs - onehot) * (1.0 / batch)
    gw = (
      jax.lax.dot_general(xs, dscores, (((0,), (0,)), ((), ()))) + 2.0 * lam * w
    )
    gb = jnp.sum(dscores, axis=0)
    vw = gw + mom * vw
    vb = gb + mom * vb
    rate = lr
    if cosine:  # optax.cosine_decay_schedule over this epoch's steps
      rate = lr * 0.5 * (1.0 + jnp.cos(jnp.pi * s.astype(jnp.float32) / steps))
    return w - rate * vw, b - rate * vb, vw, vb

  zeros_w = jnp.zeros_like(w)
  zeros_b = jnp.zeros_like(b)
  w, b, _, _ = jax.lax.fori_loop(0, steps, step, (w, b, zeros_w, zeros_b))
  w_out[cols, :] = w

  @pl.when(p == 0)
  def _store_bias():
    b_out[:] = b


@functools.partial(
  jax.jit, static_argnames=("num_programs", "interpret", "cosine", "groups")
)
def softmax_momentum_epoch(
  params,
  batches,
  x,
  y,
  hparams,
  *,
  num_programs: int = 96,
  interpret: bool = False,
  cosine: bool = False,
  groups: int = 1,
):
  """One epoch of softmax + L2 + momentum SGD (fresh momentum), one kernel.

  Args:
    params: ``{"W": [D, C], "b": [C]}`` float32.
    batches: ``[S, B]`` int32 example indices (the epoch's permutation).
    x: ``[N, D]`` float32 preprocessed features.
    y: ``[N]`` int32 labels in [0, C).
    hparams: ``[3]`` float32 (learning rate, momentum μ, λ).
    num_programs: P; D must be P · DS with DS a power of two ≥ 16.
    interpret: run in Pallas' interpreter (CPU tests; P must be 1).
    cosine: cosine-decay the rate to 0 over the epoch (else constant).
    groups: G copies of the score buffer (a power of two); program p adds
      into copy p mod G, so each address takes P/G atomic adds, not P.

  Returns:
    New params.
  """
  d, c = params["W"].shape
  steps, batch = batches.shape
  slice_size = d // num_programs
  assert slice_size * num_programs == d, (d, num_programs)
  w = jnp.zeros((d, PADDED_CLASSES), jnp.float32).at[:, :c].set(params["W"])
  b = jnp.zeros((PADDED_CLASSES,), jnp.float32).at[:c].set(params["b"])
  kernel = functools.partial(
    _kernel,
    num_classes=c,
    slice_size=slice_size,
    steps=steps,
    batch=batch,
    spin=not interpret,
    cosine=cosine,
    groups=groups,
  )
  out_shape = (
    jax.ShapeDtypeStruct(w.shape, jnp.float32),
    jax.ShapeDtypeStruct(b.shape, jnp.float32),
    jax.ShapeDtypeStruct((steps, groups, batch, PADDED_CLASSES), jnp.float32),
    jax.ShapeDtypeStruct((steps,), jnp.int32),
  )
  w_new, b_new, _, _ = pl.pallas_call(
    kernel,
    out_shape=out_shape,
    grid=(num_programs,),
    input_output_aliases={6: 2, 7: 3},
    interpret=interpret,
    compiler_params=plt.CompilerParams(num_warps=4, num_stages=1),
  )(
    batches,
    y,
    x,
    w,
    b,
    hparams,
    jnp.zeros((steps, groups, batch, PADDED_CLASSES), jnp.float32),
    jnp.zeros((steps,), jnp.int32),
  )
  return {"W": w_new[:, :c], "b": b_new[:c]}
