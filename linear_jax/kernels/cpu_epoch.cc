// One softmax + L2 + momentum-SGD epoch on the CPU as a single XLA FFI call.
//
// XLA:CPU runs a B = 256 epoch as ~200 loop iterations of two skinny
// matmuls ([B, D] x [D, C] and its transpose, C = 10) at ~40 GFLOP/s, each
// reading the gathered minibatch again. Here every minibatch row is read
// once from memory: its scores, softmax gradient and gradient contribution
// are computed while its tile of 16 rows is in cache (the next tile is
// prefetched). The forward pass is a register-blocked micro-kernel over 6
// rows × 16 padded classes on a [D, 16] copy of W (no horizontal sums); the
// backward pass adds dS^T x into [C, D] gradient rows in register blocks of
// 16 features × 5 classes over feature chunks.
//
// Semantics (checked against linear_jax.train.train_epoch in tests):
//   s = x W + b, p = softmax(s), dS = (p - onehot(y)) / B,
//   g_W = x_b^T dS + 2 lambda W, g_b = sum dS (bias not regularized),
//   trace = g + mu * trace, params -= lr_t * trace   (optax sgd(momentum)).
// Weights are held transposed, Wt [C, D], so each class's weights are a
// contiguous row. Per step it reports the minibatch's mean loss and accuracy
// (before the update) and sum W^2 (in per-thread parts). Two or more threads
// split the minibatch's rows, then the feature dimension for the update, and
// meet at a spinning barrier (std::barrier's futex waits cost ~0.1 ms a step
// on a 2-vCPU VM).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kTileRows = 16;
constexpr int64_t kChunk = 256;
constexpr int64_t kMaxClasses = 64;
constexpr int kGroup = 12;  // classes per register block (12 + 2 of 16 YMM)

// 8 floats (an AVX register with -march=native), loaded/stored unaligned.
typedef float v8 __attribute__((vector_size(32), aligned(4)));

inline v8 Load(const float* p) { return *reinterpret_cast<const v8*>(p); }
inline void Store(float* p, v8 v) { *reinterpret_cast<v8*>(p) = v; }
inline float Sum(v8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

// out[g] += x[0:len] . w[g][0:len] for G classes: G independent
// accumulators, x loaded once per G multiply-adds.
template <int G>
inline void DotGroup(const float* x, const float* const* w, int64_t len,
                     float* out) {
  v8 acc[G] = {};
  int64_t k = 0;
  for (; k + 8 <= len; k += 8) {
    const v8 xv = Load(x + k);
    for (int g = 0; g < G; ++g) acc[g] += xv * Load(w[g] + k);
  }
  for (int g = 0; g < G; ++g) {
    float total = Sum(acc[g]);
    for (int64_t j = k; j < len; ++j) total += x[j] * w[g][j];
    out[g] += total;
  }
}

// grad[g][0:len] += sum_r coef[r][g] * x_r[0:len] for G classes: the G
// gradient rows stay in registers across the tile's rows.
template <int G>
inline void AxpyGroup(const float* const* xs, int64_t rows,
                      const float (*coef)[kGroup], int64_t len,
                      float* const* grad) {
  int64_t k = 0;
  for (; k + 8 <= len; k += 8) {
    v8 acc[G];
    for (int g = 0; g < G; ++g) acc[g] = Load(grad[g] + k);
    for (int64_t r = 0; r < rows; ++r) {
      const v8 xv = Load(xs[r] + k);
      for (int g = 0; g < G; ++g) acc[g] += coef[r][g] * xv;
    }
    for (int g = 0; g < G; ++g) Store(grad[g] + k, acc[g]);
  }
  for (; k < len; ++k)
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) grad[g][k] += coef[r][g] * xs[r][k];
}

constexpr int64_t kPadded = 16;  // classes of the [D, 16] forward layout
constexpr int kRowBlock = 6;     // rows per forward micro-kernel call

// scores[r][0:16] = x_r . Wk[:, 0:16] for R rows: 2·R vector accumulators
// (no horizontal sums), one broadcast of x_r[k] per 2 multiply-adds, Wk
// ([D, 16], padded classes zero) streamed once per R rows.
template <int R>
inline void ForwardBlock(const float* const* xr, const float* wk, int64_t d,
                         float (*scores)[kMaxClasses]) {
  v8 lo[R] = {}, hi[R] = {};
  for (int64_t k = 0; k < d; ++k) {
    const v8 w0 = Load(wk + k * kPadded), w1 = Load(wk + k * kPadded + 8);
    for (int r = 0; r < R; ++r) {
      const float xv = xr[r][k];
      lo[r] += xv * w0;
      hi[r] += xv * w1;
    }
  }
  for (int r = 0; r < R; ++r) {
    Store(scores[r], lo[r]);
    Store(scores[r] + 8, hi[r]);
  }
}

inline void Forward(const float* const* xr, int64_t rows, const float* wk,
                    int64_t d, float (*scores)[kMaxClasses]) {
  int64_t r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock)
    ForwardBlock<kRowBlock>(xr + r, wk, d, scores + r);
  switch (rows - r) {
    case 1: ForwardBlock<1>(xr + r, wk, d, scores + r); break;
    case 2: ForwardBlock<2>(xr + r, wk, d, scores + r); break;
    case 3: ForwardBlock<3>(xr + r, wk, d, scores + r); break;
    case 4: ForwardBlock<4>(xr + r, wk, d, scores + r); break;
    case 5: ForwardBlock<5>(xr + r, wk, d, scores + r); break;
    default: break;
  }
}

// As AxpyGroup, 16 features (two vectors) at a time for G <= 6 classes:
// 2·G accumulators, so each row costs 2 loads of x and G broadcasts per 2·G
// multiply-adds (0.7 loads each at G = 5, against 1.1 for AxpyGroup<10>).
template <int G>
inline void AxpyWide(const float* const* xs, int64_t rows,
                     const float (*coef)[kGroup], int64_t len,
                     float* const* grad) {
  int64_t k = 0;
  for (; k + 16 <= len; k += 16) {
    v8 lo[G], hi[G];
    for (int g = 0; g < G; ++g) {
      lo[g] = Load(grad[g] + k);
      hi[g] = Load(grad[g] + k + 8);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const v8 x0 = Load(xs[r] + k), x1 = Load(xs[r] + k + 8);
      for (int g = 0; g < G; ++g) {
        lo[g] += coef[r][g] * x0;
        hi[g] += coef[r][g] * x1;
      }
    }
    for (int g = 0; g < G; ++g) {
      Store(grad[g] + k, lo[g]);
      Store(grad[g] + k + 8, hi[g]);
    }
  }
  for (; k < len; ++k)
    for (int64_t r = 0; r < rows; ++r)
      for (int g = 0; g < G; ++g) grad[g][k] += coef[r][g] * xs[r][k];
}

template <template <int> class F, typename... Args>
inline void ForGroup(int g, Args&&... args) {
  switch (g) {
    case 1: F<1>::Run(args...); break;
    case 2: F<2>::Run(args...); break;
    case 3: F<3>::Run(args...); break;
    case 4: F<4>::Run(args...); break;
    case 5: F<5>::Run(args...); break;
    case 6: F<6>::Run(args...); break;
    case 7: F<7>::Run(args...); break;
    case 8: F<8>::Run(args...); break;
    case 9: F<9>::Run(args...); break;
    case 10: F<10>::Run(args...); break;
    case 11: F<11>::Run(args...); break;
    default: F<12>::Run(args...); break;
  }
}

template <int G>
struct Dot {
  static void Run(const float* x, const float* const* w, int64_t len,
                  float* out) {
    DotGroup<G>(x, w, len, out);
  }
};

template <int G>
struct Axpy {
  static void Run(const float* const* xs, int64_t rows,
                  const float (*coef)[kGroup], int64_t len,
                  float* const* grad) {
    AxpyGroup<G>(xs, rows, coef, len, grad);
  }
};

struct Problem {
  const float* x;
  const int32_t* y;
  const int32_t* batches;
  const float* lrs;
  float* wt;
  float* wk;  // [D, 16]: Wt transposed and padded, for the forward (C <= 16)
  float* b;
  float* vt;
  float* vb;
  float* losses;
  float* correct;
  float* sq_norm_parts;  // [steps, threads]: each thread's share of sum W^2
  int64_t steps, batch, dim, classes;
  float momentum, reg;
};

// Rows [begin, end) of step `step`: accumulates dS^T x into grad [C, D] and
// dS into grad_b [C]; returns (sum of losses, number correct).
std::pair<double, int64_t> RowsGradient(const Problem& p, int64_t step,
                                        int64_t begin, int64_t end,
                                        float* grad, float* grad_b) {
  const int64_t d = p.dim, c_count = p.classes;
  const int32_t* idx = p.batches + step * p.batch;
  const float inv_batch = 1.0f / static_cast<float>(p.batch);
  double loss_sum = 0.0;
  int64_t hits = 0;
  float scores[kTileRows][kMaxClasses];
  for (int64_t r = begin; r < std::min(end, begin + kTileRows); ++r)
    for (int64_t k = 0; k < std::min(kChunk, d); k += 16)
      __builtin_prefetch(p.x + static_cast<int64_t>(idx[r]) * d + k);
  for (int64_t t0 = begin; t0 < end; t0 += kTileRows) {
    const int64_t rows = std::min(kTileRows, end - t0);
    const float* xr[kTileRows];
    for (int64_t r = 0; r < rows; ++r) {
      xr[r] = p.x + static_cast<int64_t>(idx[t0 + r]) * d;
      // The next tile's first chunk, a tile ahead (random rows miss DRAM).
      if (t0 + kTileRows + r < end) {
        const float* ahead =
            p.x + static_cast<int64_t>(idx[t0 + kTileRows + r]) * d;
        for (int64_t k = 0; k < std::min(kChunk, d); k += 16)
          __builtin_prefetch(ahead + k);
      }
    }
    if (p.wk != nullptr) {
      Forward(xr, rows, p.wk, d, scores);
    } else {
      // Forward for C > 16: scores[r][c] = x_r . Wt_c, chunk by chunk (the
      // Wt chunk stays in L1 across the tile's rows), classes in register
      // blocks of kGroup.
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < c_count; ++c) scores[r][c] = 0.0f;
      for (int64_t k0 = 0; k0 < d; k0 += kChunk) {
        const int64_t len = std::min(kChunk, d - k0);
        for (int64_t c0 = 0; c0 < c_count; c0 += kGroup) {
          const int g = static_cast<int>(std::min<int64_t>(kGroup, c_count - c0));
          const float* w[kGroup];
          for (int j = 0; j < g; ++j) w[j] = p.wt + (c0 + j) * d + k0;
          for (int64_t r = 0; r < rows; ++r)
            ForGroup<Dot>(g, xr[r] + k0, w, len, &scores[r][c0]);
        }
      }
    }
    // Softmax gradient per row, in place: scores <- dS.
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores[r];
      const int32_t label = p.y[idx[t0 + r]];
      float top = -INFINITY;
      int64_t arg = 0;
      for (int64_t c = 0; c < c_count; ++c) {
        s[c] += p.b[c];
        if (s[c] > top) { top = s[c]; arg = c; }
      }
      hits += (arg == label);
      float total = 0.0f;
      for (int64_t c = 0; c < c_count; ++c) total += std::exp(s[c] - top);
      loss_sum += static_cast<double>(top + std::log(total) - s[label]);
      for (int64_t c = 0; c < c_count; ++c) {
        float prob = std::exp(s[c] - top) / total;
        s[c] = (prob - (c == label ? 1.0f : 0.0f)) * inv_batch;
        grad_b[c] += s[c];
      }
    }
    // Backward: grad_c += sum_r dS[r][c] x_r, chunk by chunk, in class
    // blocks of up to 5 (AxpyWide) or kGroup (AxpyGroup, more classes).
    const int64_t block = c_count <= 10 ? 5 : kGroup;
    for (int64_t c0 = 0; c0 < c_count; c0 += block) {
      const int g = static_cast<int>(std::min<int64_t>(block, c_count - c0));
      float coef[kTileRows][kGroup];
      for (int64_t r = 0; r < rows; ++r)
        for (int j = 0; j < g; ++j) coef[r][j] = scores[r][c0 + j];
      for (int64_t k0 = 0; k0 < d; k0 += kChunk) {
        const int64_t len = std::min(kChunk, d - k0);
        const float* xs[kTileRows];
        for (int64_t r = 0; r < rows; ++r) xs[r] = xr[r] + k0;
        float* gr[kGroup];
        for (int j = 0; j < g; ++j) gr[j] = grad + (c0 + j) * d + k0;
        switch (block == 5 ? g : 0) {
          case 1: AxpyWide<1>(xs, rows, coef, len, gr); break;
          case 2: AxpyWide<2>(xs, rows, coef, len, gr); break;
          case 3: AxpyWide<3>(xs, rows, coef, len, gr); break;
          case 4: AxpyWide<4>(xs, rows, coef, len, gr); break;
          case 5: AxpyWide<5>(xs, rows, coef, len, gr); break;
          default: ForGroup<Axpy>(g, xs, rows, coef, len, gr); break;
        }
      }
    }
  }
  return {loss_sum, hits};
}

// A spinning barrier: futex sleeps/wakes (std::barrier) cost ~0.1 ms per
// step on this VM, as much as a third of the step.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void arrive_and_wait() {
    const int gen = generation_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_acq_rel);
    } else {
      while (generation_.load(std::memory_order_acquire) == gen)
        __builtin_ia32_pause();
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> generation_{0};
};

void RunEpoch(const Problem& p, int threads) {
  const int64_t size = p.classes * p.dim;
  std::vector<std::vector<float>> grads(threads, std::vector<float>(size));
  std::vector<std::vector<float>> grads_b(threads,
                                          std::vector<float>(p.classes));
  std::vector<double> losses(threads);
  std::vector<int64_t> hits(threads);
  SpinBarrier sync(threads);
  auto worker = [&](int t) {
    const int64_t rows_per = (p.batch + threads - 1) / threads;
    const int64_t begin = std::min<int64_t>(p.batch, t * rows_per);
    const int64_t end = std::min<int64_t>(p.batch, begin + rows_per);
    // Features this thread updates (rounded to 16 floats).
    const int64_t feat_per = ((p.dim + threads - 1) / threads + 15) / 16 * 16;
    const int64_t f0 = std::min<int64_t>(p.dim, t * feat_per);
    const int64_t f1 = std::min<int64_t>(p.dim, f0 + feat_per);
    for (int64_t step = 0; step < p.steps; ++step) {
      std::fill(grads[t].begin(), grads[t].end(), 0.0f);
      std::fill(grads_b[t].begin(), grads_b[t].end(), 0.0f);
      auto [loss, hit] = RowsGradient(p, step, begin, end, grads[t].data(),
                                      grads_b[t].data());
      losses[t] = loss;
      hits[t] = hit;
      sync.arrive_and_wait();
      const float lr = p.lrs[step];
      double sq_norm = 0.0;  // sum W^2 of this thread's features, pre-update
      for (int64_t c = 0; c < p.classes; ++c) {
        float* w = p.wt + c * p.dim;
        float* v = p.vt + c * p.dim;
        for (int64_t k = f0; k < f1; ++k) {
          sq_norm += static_cast<double>(w[k]) * w[k];
          float g = 2.0f * p.reg * w[k];
          for (int u = 0; u < threads; ++u) g += grads[u][c * p.dim + k];
          v[k] = g + p.momentum * v[k];
          w[k] -= lr * v[k];
          if (p.wk != nullptr) p.wk[k * kPadded + c] = w[k];
        }
      }
      p.sq_norm_parts[step * threads + t] = static_cast<float>(sq_norm);
      if (t == 0) {
        double loss_total = 0.0;
        int64_t hit_total = 0;
        for (int u = 0; u < threads; ++u) {
          loss_total += losses[u];
          hit_total += hits[u];
        }
        p.losses[step] = static_cast<float>(loss_total / p.batch);
        p.correct[step] = static_cast<float>(hit_total) / p.batch;
        for (int64_t c = 0; c < p.classes; ++c) {
          float g = 0.0f;
          for (int u = 0; u < threads; ++u) g += grads_b[u][c];
          p.vb[c] = g + p.momentum * p.vb[c];
          p.b[c] -= lr * p.vb[c];
        }
      }
      sync.arrive_and_wait();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
}

ffi::Error SoftmaxMomentumEpochImpl(
    ffi::Buffer<ffi::F32> wt, ffi::Buffer<ffi::F32> b,
    ffi::Buffer<ffi::F32> vt, ffi::Buffer<ffi::F32> vb,
    ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> y,
    ffi::Buffer<ffi::S32> batches, ffi::Buffer<ffi::F32> lrs,
    ffi::Buffer<ffi::F32> hparams, ffi::ResultBuffer<ffi::F32> wt_out,
    ffi::ResultBuffer<ffi::F32> b_out, ffi::ResultBuffer<ffi::F32> vt_out,
    ffi::ResultBuffer<ffi::F32> vb_out, ffi::ResultBuffer<ffi::F32> losses,
    ffi::ResultBuffer<ffi::F32> correct,
    ffi::ResultBuffer<ffi::F32> sq_norm_parts, int64_t threads) {
  auto wdims = wt.dimensions();
  auto xdims = x.dimensions();
  auto bdims = batches.dimensions();
  if (wdims.size() != 2 || xdims.size() != 2 || bdims.size() != 2 ||
      wdims[1] != xdims[1] || wdims[0] > kMaxClasses) {
    return ffi::Error::InvalidArgument(
        "linear_jax cpu epoch: want Wt [C <= 64, D], x [N, D], batches [S, B]");
  }
  Problem p;
  p.classes = wdims[0];
  p.dim = wdims[1];
  p.steps = bdims[0];
  p.batch = bdims[1];
  p.x = x.typed_data();
  p.y = y.typed_data();
  p.batches = batches.typed_data();
  p.lrs = lrs.typed_data();
  p.momentum = hparams.typed_data()[0];
  p.reg = hparams.typed_data()[1];
  std::memcpy(wt_out->typed_data(), wt.typed_data(),
              sizeof(float) * wt.element_count());
  std::memcpy(b_out->typed_data(), b.typed_data(),
              sizeof(float) * b.element_count());
  std::memcpy(vt_out->typed_data(), vt.typed_data(),
              sizeof(float) * vt.element_count());
  std::memcpy(vb_out->typed_data(), vb.typed_data(),
              sizeof(float) * vb.element_count());
  p.wt = wt_out->typed_data();
  p.b = b_out->typed_data();
  p.vt = vt_out->typed_data();
  p.vb = vb_out->typed_data();
  p.losses = losses->typed_data();
  p.correct = correct->typed_data();
  p.sq_norm_parts = sq_norm_parts->typed_data();
  if (sq_norm_parts->element_count() != static_cast<size_t>(p.steps * threads)) {
    return ffi::Error::InvalidArgument(
        "linear_jax cpu epoch: sq_norm_parts must be [steps, threads]");
  }
  std::vector<float> wk;  // the forward's [D, 16] copy of Wt (C <= 16)
  p.wk = nullptr;
  if (p.classes <= kPadded) {
    wk.assign(p.dim * kPadded, 0.0f);
    for (int64_t c = 0; c < p.classes; ++c)
      for (int64_t k = 0; k < p.dim; ++k) wk[k * kPadded + c] = p.wt[c * p.dim + k];
    p.wk = wk.data();
  }
  RunEpoch(p, static_cast<int>(std::max<int64_t>(1, threads)));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    LinearJaxSoftmaxMomentumEpoch, SoftmaxMomentumEpochImpl,
    ffi::Ffi::Bind()
        .Arg<ffi::Buffer<ffi::F32>>()   // wt [C, D]
        .Arg<ffi::Buffer<ffi::F32>>()   // b [C]
        .Arg<ffi::Buffer<ffi::F32>>()   // vt [C, D]
        .Arg<ffi::Buffer<ffi::F32>>()   // vb [C]
        .Arg<ffi::Buffer<ffi::F32>>()   // x [N, D]
        .Arg<ffi::Buffer<ffi::S32>>()   // y [N]
        .Arg<ffi::Buffer<ffi::S32>>()   // batches [S, B]
        .Arg<ffi::Buffer<ffi::F32>>()   // lrs [S]
        .Arg<ffi::Buffer<ffi::F32>>()   // (momentum, lambda)
        .Ret<ffi::Buffer<ffi::F32>>()   // wt
        .Ret<ffi::Buffer<ffi::F32>>()   // b
        .Ret<ffi::Buffer<ffi::F32>>()   // vt
        .Ret<ffi::Buffer<ffi::F32>>()   // vb
        .Ret<ffi::Buffer<ffi::F32>>()   // losses [S]
        .Ret<ffi::Buffer<ffi::F32>>()   // correct [S]
        .Ret<ffi::Buffer<ffi::F32>>()   // sum W^2 parts [S, threads]
        .Attr<int64_t>("threads"));
