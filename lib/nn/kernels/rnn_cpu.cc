// rnnlab's CPU kernels for XLA, through the XLA FFI (jax.ffi): LSTM and GRU layers,
// additive-attention scores and softmax cross-entropy rows (lib/nn/kernels/*.py).
//
// Recurrent layers. One call runs a whole layer's recurrence, forward or backward, over
// time-major arrays. Each step is split by hidden units over XLA's intra-op threads
// (Team: one task a step, the caller takes a share): a thread computes its units'
// columns of every gate block, then those units' gates for every row, so a forward step
// costs one synchronisation, and so does a backward step (BackwardSteps). The recurrent
// weight is packed once per call into 32-column panels and each step's product is an
// 8 x 32 AVX-512 register-blocked kernel over them (GemmPacked); a BLAS sgemm would pack
// it again at every step. Why by hand: XLA:CPU's dot inside a scan runs the 64x256 by
// 256x1024 product at about 130 GFLOP/s on two cores (launch/benchmarks/README.md). The
// recurrent weight's gradient, and the products without AVX-512, use numpy's bundled
// OpenBLAS, handed over as function pointers (rnnlab_set_blas); its own threads are set
// to one for the duration of a call (they would spin against XLA's), then restored.
//
// Every array may carry leading "problem" axes (vmap with broadcast_all): the kernels
// loop over them. The input product and the outputs' zeros at masked steps are left to
// XLA (lib/nn/kernels/rnn.py).
//
// Layouts (per problem, row-major, time-major): xp [T,B,G] (input product plus bias),
// w [H,G], h0, c0 [B,H], mask [T,B] (nonzero: a real step), ct_y [T,B,H].
// LSTM: G = 4H, gates (i, f, z, o); residual a [T,B,4H] = the activated gates.
// GRU: G = 3H, gates (r, z, n), b_rec [G] added to h@w; residual a [T,B,4H] =
// (r, z, n, (h@w + b_rec)_n). hc, cc [T,B,H]: the carry after each step (a masked
// step keeps the one before).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// cblas_sgemm with 64-bit integers (numpy's scipy-openblas64 build), and its thread count.
using Sgemm = void (*)(int order, int transa, int transb, int64_t m, int64_t n, int64_t k,
                       float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float beta, float* c, int64_t ldc);
using SetThreads = void (*)(int);
using GetThreads = int (*)();
Sgemm g_sgemm = nullptr;
SetThreads g_set_threads = nullptr;
GetThreads g_get_threads = nullptr;
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// c[m x n] = beta * c + a^T @ b, a being [k x m] and b [k x n]; each with its row stride.
inline void GemmTN(const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, int64_t m, int64_t n, int64_t k, float beta) {
  if (m > 0 && n > 0 && k > 0) {
    g_sgemm(kRowMajor, kTrans, kNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  }
}

// BLAS on one thread while a kernel runs (RAII), restored afterwards.
struct SingleThreadedBlas {
  int previous;
  SingleThreadedBlas() : previous(g_get_threads()) {
    if (previous != 1) g_set_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous != 1) g_set_threads(previous);
  }
};

// Runs fn(part) for part in [0, parts): the caller takes parts, and so do parts - 1
// tasks on XLA's intra-op pool; each part is claimed once, whoever comes first, so a
// task that starts late finds nothing left. Returns when every part has finished.
class Team {
 public:
  Team(ffi::ThreadPool pool, int64_t parts) : pool_(pool), parts_(parts) {}
  int64_t parts() const { return parts_; }

  void For(const std::function<void(int64_t)>& fn) const {
    if (parts_ <= 1) {
      fn(0);
      return;
    }
    struct State {
      std::atomic<int64_t> next{0}, done{0};
    };
    auto state = std::make_shared<State>();
    auto work = [state, &fn, parts = parts_]() {
      for (int64_t p; (p = state->next.fetch_add(1)) < parts;) {
        fn(p);
        state->done.fetch_add(1, std::memory_order_release);
      }
    };
    for (int64_t i = 1; i < parts_; ++i) {
      auto task = work;
      const_cast<ffi::ThreadPool&>(pool_).Schedule(std::move(task));
    }
    work();
    while (state->done.load(std::memory_order_acquire) < parts_) std::this_thread::yield();
  }

 private:
  ffi::ThreadPool pool_;
  int64_t parts_;
};

// Rows [first, last) of part p of B rows.
inline void Rows(int64_t B, int64_t parts, int64_t p, int64_t* first, int64_t* last) {
  *first = B * p / parts;
  *last = B * (p + 1) / parts;
}

// Sigmoid and tanh through expf only, which the compiler vectorizes (libmvec); the
// argument is clamped where the result is already 0 or 1 (-1 or 1) in float32.
inline float Sigmoid(float x) {
  x = std::min(std::max(x, -40.0f), 40.0f);
  return 1.0f / (1.0f + std::exp(-x));
}
inline float Tanh(float x) {
  x = std::min(std::max(x, -20.0f), 20.0f);
  return 2.0f / (1.0f + std::exp(-2.0f * x)) - 1.0f;
}
void SigmoidInPlace(float* __restrict x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = Sigmoid(x[j]);
}
void TanhInPlace(float* __restrict x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) x[j] = Tanh(x[j]);
}

struct Dims {
  int64_t problems, T, B, H, G;
  int64_t step(int64_t s, bool reverse) const { return reverse ? T - 1 - s : s; }
};

// Dims from xp or ct_y [..., T, B, X] and a carry [..., B, H]; G from w [..., H, G].
template <typename A, typename C, typename W>
Dims DimsOf(const A& seq, const C& carry, const W& w) {
  auto sd = seq.dimensions();
  auto hd = carry.dimensions();
  auto wd = w.dimensions();
  const size_t r = sd.size();
  Dims d{1, sd[r - 3], sd[r - 2], hd[hd.size() - 1], wd[wd.size() - 1]};
  for (size_t i = 0; i + 3 < r; ++i) d.problems *= sd[i];
  return d;
}

ffi::Error Check(const Dims& d, int64_t gates) {
  if (g_sgemm == nullptr) return ffi::Error::Internal("rnnlab kernels: no BLAS was set");
  if (d.G != gates * d.H) return ffi::Error::InvalidArgument("rnnlab kernels: G != gates * H");
  return ffi::Error::Success();
}

// Parts for work split into n pieces: at most one per piece and one per pool thread.
int64_t PartsOf(const ffi::ThreadPool& pool, int64_t n) {
  return std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), n));
}

// Threads for a step split into n units: at least 8 each; one where a step's product is
// too small to pay for a synchronisation (a few microseconds: under 2^17 multiply-adds).
int64_t PartsFor(const ffi::ThreadPool& pool, const Dims& d, int64_t n) {
  if (d.B * d.H * d.G < (int64_t{1} << 17)) return 1;
  return PartsOf(pool, n / 8);
}

// ------------------------------------------------------------------ packed products
// The recurrent weight is the same matrix at every step, so each thread packs its
// columns once per call into panels of 32 (K x 32 floats, zero-padded) and every step's
// product runs an 8 x 32 register-blocked AVX-512 kernel over them; a BLAS sgemm packs
// the whole matrix again at every step (measured: 40% on top of its arithmetic at
// 64 x 256 by 256 x 1024). Without AVX-512 the product is the BLAS's.
constexpr int64_t kNR = 32, kMR = 8, kKC = 256;

// Columns [c0, c0 + n) of a K x N matrix whose element (k, c) is src[k * ld + c], or
// src[c * ld + k] when trans.
struct Packed {
  const float* src = nullptr;
  int64_t ld = 0, K = 0, c0 = 0, n = 0;
  bool trans = false;
  std::vector<float> panels;

  int64_t count() const { return (n + kNR - 1) / kNR; }

  void Pack(const float* m, int64_t ld_, bool trans_, int64_t K_, int64_t c0_, int64_t n_) {
    src = m, ld = ld_, trans = trans_, K = K_, c0 = c0_, n = n_;
#ifdef __AVX512F__
    panels.assign(count() * K * kNR, 0.0f);
    for (int64_t p = 0; p < count(); ++p) {
      float* dst = panels.data() + p * K * kNR;
      const int64_t cols = std::min(kNR, n - p * kNR);
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t col = c0 + p * kNR + c;
          dst[k * kNR + c] = trans ? src[col * ld + k] : src[k * ld + col];
        }
      }
    }
#endif
  }
};

#ifdef __AVX512F__
// c[MR x 32] += a[MR x kc] @ panel[kc x 32], the columns masked by m0 | m1.
template <int MR>
void Micro(const float* __restrict a, int64_t lda, const float* __restrict panel, int64_t kc,
           float* __restrict c, int64_t ldc, __mmask16 m0, __mmask16 m1) {
  __m512 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm512_maskz_loadu_ps(m0, c + r * ldc);
    acc1[r] = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_loadu_ps(panel + k * kNR);
    const __m512 w1 = _mm512_loadu_ps(panel + k * kNR + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + k]);
      acc0[r] = _mm512_fmadd_ps(av, w0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, w1, acc1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc1[r]);
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t,
                         __mmask16, __mmask16);
constexpr MicroFn kMicro[kMR + 1] = {nullptr,     Micro<1>, Micro<2>, Micro<3>, Micro<4>,
                                     Micro<5>,    Micro<6>, Micro<7>, Micro<8>};
#endif

// c[m x n] += a[m x K] @ the packed columns (c's row stride ldc).
void GemmPacked(const float* a, int64_t lda, int64_t m, const Packed& w, float* c,
                int64_t ldc) {
  if (m <= 0 || w.n <= 0) return;
#ifdef __AVX512F__
  for (int64_t k0 = 0; k0 < w.K; k0 += kKC) {
    const int64_t kc = std::min(kKC, w.K - k0);
    for (int64_t p = 0; p < w.count(); ++p) {
      const float* panel = w.panels.data() + (p * w.K + k0) * kNR;
      const int64_t cols = std::min(kNR, w.n - p * kNR);
      const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
      const __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0
                                                : static_cast<__mmask16>((1u << (cols - 16)) - 1);
      for (int64_t i = 0; i < m; i += kMR) {
        kMicro[std::min(kMR, m - i)](a + i * lda + k0, lda, panel, kc, c + i * ldc + p * kNR,
                                      ldc, m0, m1);
      }
    }
  }
#else
  g_sgemm(kRowMajor, kNoTrans, w.trans ? kTrans : kNoTrans, m, w.n, w.K, 1.0f, a, lda,
          w.trans ? w.src + w.c0 * w.ld : w.src + w.c0, w.ld, 1.0f, c, ldc);
#endif
}

// Each part's columns of w, packed: `blocks` column blocks per part, block g being
// columns [g * width + j0, g * width + j1) of w (or of w^T when trans), K rows.
std::vector<Packed> PackParts(const Team& par, const float* w, int64_t ld, bool trans,
                              int64_t K, int64_t units, int64_t blocks, int64_t width) {
  std::vector<Packed> out(par.parts() * blocks);
  par.For([&](int64_t part) {
    int64_t j0, j1;
    Rows(units, par.parts(), part, &j0, &j1);
    for (int64_t g = 0; g < blocks; ++g) {
      out[part * blocks + g].Pack(w, ld, trans, K, g * width + j0, j1 - j0);
    }
  });
  return out;
}

// The backward recurrence's steps, last to first: gates(s, j0, j1) writes units
// [j0, j1) of step s's gate cotangents du [T,B,G] (from dh, which it then clears or
// scales), and dh[:, units] += du_s @ w[units, :]^T (wt: each part's columns of w^T)
// needs every unit's du_s, so a step is two passes. The second's units and the next
// step's first pass over the same units run on one thread with no barrier between them:
// one barrier a step.
void BackwardSteps(const Team& par, const Dims& d, bool reverse, const std::vector<Packed>& wt,
                   const float* du, float* dh,
                   const std::function<void(int64_t, int64_t, int64_t)>& gates) {
  const int64_t B = d.B, H = d.H, G = d.G;
  par.For([&](int64_t part) {
    int64_t j0, j1;
    Rows(H, par.parts(), part, &j0, &j1);
    gates(d.T - 1, j0, j1);
  });
  for (int64_t s = d.T - 1; s >= 0; --s) {
    const float* dut = du + d.step(s, reverse) * B * G;
    par.For([&](int64_t part) {
      int64_t j0, j1;
      Rows(H, par.parts(), part, &j0, &j1);
      GemmPacked(dut, G, B, wt[part], dh + j0, H);
      if (s > 0) gates(s - 1, j0, j1);
    });
  }
}

// ---------------------------------------------------------------------------- LSTM
// Units [j0, j1) of one row: the gates in place (sigmoid on i, f, o, tanh on z), then
// the new cell and output.
void LstmUnits(float* __restrict g, const float* __restrict cp, float* __restrict h,
               float* __restrict c, int64_t H, int64_t j0, int64_t j1) {
  SigmoidInPlace(g + j0, j1 - j0);
  SigmoidInPlace(g + H + j0, j1 - j0);
  TanhInPlace(g + 2 * H + j0, j1 - j0);
  SigmoidInPlace(g + 3 * H + j0, j1 - j0);
  for (int64_t j = j0; j < j1; ++j) {
    const float cj = g[H + j] * cp[j] + g[j] * g[2 * H + j];
    c[j] = cj;
    h[j] = g[3 * H + j] * Tanh(cj);
  }
}

// a [T,B,G] holds xp on entry (XLA aliases the two) and the activated gates on exit.
// Each thread takes a range of hidden units: its columns of the four gate blocks (a
// quarter of w's columns each to pack) and then those units' cells, for every row.
void LstmForward(const Team& par, const Dims& d, bool reverse, const float* w,
                 const float* h0, const float* c0, const float* mask, float* a, float* hc,
                 float* cc) {
  const int64_t B = d.B, H = d.H, G = d.G;
  const std::vector<Packed> wp = PackParts(par, w, G, false, H, H, 4, H);
  for (int64_t s = 0; s < d.T; ++s) {
    const int64_t t = d.step(s, reverse), p = s ? d.step(s - 1, reverse) : -1;
    const float* hp = p < 0 ? h0 : hc + p * B * H;
    const float* cp = p < 0 ? c0 : cc + p * B * H;
    float* at = a + t * B * G;
    par.For([&](int64_t part) {
      int64_t j0, j1;
      Rows(H, par.parts(), part, &j0, &j1);
      for (int64_t gate = 0; gate < 4; ++gate) {
        GemmPacked(hp, H, B, wp[part * 4 + gate], at + gate * H + j0, G);
      }
      for (int64_t b = 0; b < B; ++b) {
        float* hb = hc + (t * B + b) * H;
        float* cb = cc + (t * B + b) * H;
        if (mask[t * B + b] == 0.0f) {
          std::memcpy(hb + j0, hp + b * H + j0, sizeof(float) * (j1 - j0));
          std::memcpy(cb + j0, cp + b * H + j0, sizeof(float) * (j1 - j0));
          continue;
        }
        LstmUnits(at + b * G, cp + b * H, hb, cb, H, j0, j1);
      }
    });
  }
}

// Units [j0, j1) of one row's gate cotangents, written over its gates (g and dz may be
// the same array); the cell's cotangent moves one step back, the output's is cleared
// for the recurrent product to fill.
void LstmUnitsBackward(const float* g, const float* __restrict c, const float* __restrict cp,
                       const float* __restrict cty, float* dz, float* __restrict dh,
                       float* __restrict dc, int64_t H, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float i = g[j], f = g[H + j], z = g[2 * H + j], o = g[3 * H + j];
    const float tc = Tanh(c[j]);
    const float dhj = dh[j] + cty[j];
    const float dcj = dc[j] + dhj * o * (1.0f - tc * tc);
    dz[j] = dcj * z * i * (1.0f - i);
    dz[H + j] = dcj * cp[j] * f * (1.0f - f);
    dz[2 * H + j] = dcj * i * (1.0f - z * z);
    dz[3 * H + j] = dhj * tc * o * (1.0f - o);
    dc[j] = dcj * f;
    dh[j] = 0.0f;
  }
}

// dz [T,B,G] holds the activated gates on entry (XLA aliases it to a) and the cotangent
// of the gate pre-activations on exit; dh, dc [B,H] enter as the final carry's cotangent
// and leave as the initial carry's. A masked row passes its carry's cotangent through.
// Each step is two passes split by hidden units: the gates' cotangents, then
// dh[:, units] += dz_t @ w[units, :]^T (each thread packs its rows of w).
void LstmBackward(const Team& par, const Dims& d, bool reverse, const float* w,
                  const float* cc, const float* c0, const float* mask, const float* ct_y,
                  float* dz, float* dh, float* dc) {
  const int64_t B = d.B, H = d.H, G = d.G;
  const std::vector<Packed> wt = PackParts(par, w, G, true, G, H, 1, 0);  // w^T's columns
  // Units [j0, j1) of step s's gate cotangents.
  auto gates = [&](int64_t s, int64_t j0, int64_t j1) {
    const int64_t t = d.step(s, reverse), p = s ? d.step(s - 1, reverse) : -1;
    const float* cp = p < 0 ? c0 : cc + p * B * H;
    float* dzt = dz + t * B * G;
    for (int64_t b = 0; b < B; ++b) {
      float* dzb = dzt + b * G;
      if (mask[t * B + b] == 0.0f) {
        for (int64_t gate = 0; gate < 4; ++gate) {
          std::memset(dzb + gate * H + j0, 0, sizeof(float) * (j1 - j0));
        }
        continue;
      }
      LstmUnitsBackward(dzb, cc + (t * B + b) * H, cp + b * H, ct_y + (t * B + b) * H, dzb,
                        dh + b * H, dc + b * H, H, j0, j1);
    }
  };
  BackwardSteps(par, d, reverse, wt, dz, dh, gates);
}

// ----------------------------------------------------------------------------- GRU
// Units [j0, j1) of one row: the gates r, z, n and the recurrent product's n block
// (kept for the backward pass), then the new output. One pointer per block, so the
// compiler vectorizes every loop.
void GruUnits(const float* __restrict x, const float* __restrict u, const float* __restrict hp,
              float* __restrict r, float* __restrict z, float* __restrict n,
              float* __restrict un, float* __restrict h, int64_t H, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) r[j] = Sigmoid(x[j] + u[j]);
  for (int64_t j = j0; j < j1; ++j) z[j] = Sigmoid(x[H + j] + u[H + j]);
  for (int64_t j = j0; j < j1; ++j) {
    n[j] = Tanh(x[2 * H + j] + r[j] * u[2 * H + j]);
    un[j] = u[2 * H + j];
    h[j] = (1.0f - z[j]) * n[j] + z[j] * hp[j];
  }
}

// One row's units [j0, j1) of the backward pass: the input and recurrent products'
// cotangents (dx, du: blocks r, z, n) and the output's, carried one step back.
void GruUnitsBackward(const float* __restrict r, const float* __restrict z,
                      const float* __restrict n, const float* __restrict un,
                      const float* __restrict hp, const float* __restrict cty,
                      float* __restrict dx_r, float* __restrict dx_z, float* __restrict dx_n,
                      float* __restrict du_r, float* __restrict du_z, float* __restrict du_n,
                      float* __restrict dh, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) {
    const float dhj = dh[j] + cty[j];
    const float dn = dhj * (1.0f - z[j]) * (1.0f - n[j] * n[j]);
    const float dr = dn * un[j] * r[j] * (1.0f - r[j]);
    const float dzz = dhj * (hp[j] - n[j]) * z[j] * (1.0f - z[j]);
    dx_r[j] = dr;
    dx_z[j] = dzz;
    dx_n[j] = dn;
    du_r[j] = dr;
    du_z[j] = dzz;
    du_n[j] = dn * r[j];
    dh[j] = dhj * z[j];
  }
}

// hu [B,G]: scratch for h@w + b_rec. Each thread takes a range of hidden units: its
// columns of the three gate blocks, then those units' gates, for every row.
void GruForward(const Team& par, const Dims& d, bool reverse, const float* xp,
                const float* w, const float* b_rec, const float* h0, const float* mask,
                float* a, float* hc, float* hu) {
  const int64_t B = d.B, H = d.H, G = d.G;
  const std::vector<Packed> wp = PackParts(par, w, G, false, H, H, 3, H);
  for (int64_t s = 0; s < d.T; ++s) {
    const int64_t t = d.step(s, reverse), p = s ? d.step(s - 1, reverse) : -1;
    const float* hp = p < 0 ? h0 : hc + p * B * H;
    par.For([&](int64_t part) {
      int64_t j0, j1;
      Rows(H, par.parts(), part, &j0, &j1);
      for (int64_t gate = 0; gate < 3; ++gate) {
        const int64_t c0 = gate * H + j0;
        for (int64_t b = 0; b < B; ++b) {
          std::memcpy(hu + b * G + c0, b_rec + c0, sizeof(float) * (j1 - j0));
        }
        GemmPacked(hp, H, B, wp[part * 3 + gate], hu + c0, G);
      }
      for (int64_t b = 0; b < B; ++b) {
        float* hb = hc + (t * B + b) * H;
        if (mask[t * B + b] == 0.0f) {
          std::memcpy(hb + j0, hp + b * H + j0, sizeof(float) * (j1 - j0));
          continue;
        }
        float* g = a + (t * B + b) * 4 * H;
        GruUnits(xp + (t * B + b) * G, hu + b * G, hp + b * H, g, g + H, g + 2 * H, g + 3 * H,
                 hb, H, j0, j1);
      }
    });
  }
}

// dxp, dhw [T,B,G]: the cotangents of the input and recurrent products (h@w + b_rec);
// dh [B,H] enters as the final carry's cotangent and leaves as the initial carry's. Each
// step is two passes split by hidden units, as the LSTM's.
void GruBackward(const Team& par, const Dims& d, bool reverse, const float* w,
                 const float* a, const float* hc, const float* h0, const float* mask,
                 const float* ct_y, float* dxp, float* dhw, float* dh) {
  const int64_t B = d.B, H = d.H, G = d.G;
  const std::vector<Packed> wt = PackParts(par, w, G, true, G, H, 1, 0);  // w^T's columns
  auto gates = [&](int64_t s, int64_t j0, int64_t j1) {
    const int64_t t = d.step(s, reverse), p = s ? d.step(s - 1, reverse) : -1;
    const float* hp = p < 0 ? h0 : hc + p * B * H;
    for (int64_t b = 0; b < B; ++b) {
      float* dx = dxp + (t * B + b) * G;
      float* du = dhw + (t * B + b) * G;
      if (mask[t * B + b] == 0.0f) {
        for (int64_t gate = 0; gate < 3; ++gate) {
          std::memset(dx + gate * H + j0, 0, sizeof(float) * (j1 - j0));
          std::memset(du + gate * H + j0, 0, sizeof(float) * (j1 - j0));
        }
        continue;
      }
      const float* g = a + (t * B + b) * 4 * H;
      GruUnitsBackward(g, g + H, g + 2 * H, g + 3 * H, hp + b * H, ct_y + (t * B + b) * H, dx,
                       dx + H, dx + 2 * H, du, du + H, du + 2 * H, dh + b * H, j0, j1);
    }
  };
  BackwardSteps(par, d, reverse, wt, dhw, dh, gates);
}

// ------------------------------------------------------------------ weight gradient
// dw [H,G] = sum_t h_{t-1}^T dz_t over steps in processing order (h_{-1} = h0): two
// products (the first step, then all others at once), split by columns of dw.
void WeightGrad(const Team& par, const Dims& d, bool reverse, const float* h0, const float* hc,
                const float* dz, float* dw) {
  const int64_t B = d.B, H = d.H, G = d.G, T = d.T;
  const int64_t first = reverse ? T - 1 : 0;
  const float* h_rest = reverse ? hc + B * H : hc;    // h_{t-1} of the other steps
  const float* dz_rest = reverse ? dz : dz + B * G;  // their dz, contiguous
  par.For([&](int64_t part) {
    int64_t g0, g1;
    Rows(G, par.parts(), part, &g0, &g1);
    std::fill(dw + g0, dw + g1, 0.0f);
    for (int64_t j = 1; j < H; ++j) std::fill(dw + j * G + g0, dw + j * G + g1, 0.0f);
    GemmTN(h0, H, dz + first * B * G + g0, G, dw + g0, G, H, g1 - g0, B, 1.0f);
    GemmTN(h_rest, H, dz_rest + g0, G, dw + g0, G, H, g1 - g0, (T - 1) * B, 1.0f);
  });
}

// ------------------------------------------------------------- additive attention
// scores[t,s] = sum_a v[a] tanh(qp[t,a] + kp[s,a]) for one sequence (qp [T,A], kp [S,A]),
// without the T x S x A tensor of tanh XLA would write to memory and read back.
void AdditiveForward(const float* __restrict qp, const float* __restrict kp,
                     const float* __restrict v, float* __restrict out, int64_t T, int64_t S,
                     int64_t A) {
  for (int64_t t = 0; t < T; ++t) {
    const float* q = qp + t * A;
    for (int64_t s = 0; s < S; ++s) {
      const float* k = kp + s * A;
      float acc = 0.0f;
      for (int64_t a = 0; a < A; ++a) acc += v[a] * Tanh(q[a] + k[a]);
      out[t * S + s] = acc;
    }
  }
}

// The backward pass of one sequence, the tanh recomputed: dqp, dkp [.,A] += and dv [A] +=.
void AdditiveBackward(const float* __restrict qp, const float* __restrict kp,
                      const float* __restrict v, const float* __restrict g,
                      float* __restrict dqp, float* __restrict dkp, float* __restrict dv,
                      int64_t T, int64_t S, int64_t A) {
  for (int64_t t = 0; t < T; ++t) {
    const float* q = qp + t * A;
    float* dq = dqp + t * A;
    for (int64_t s = 0; s < S; ++s) {
      const float gts = g[t * S + s];
      if (gts == 0.0f) continue;
      const float* k = kp + s * A;
      float* dk = dkp + s * A;
      for (int64_t a = 0; a < A; ++a) {
        const float e = Tanh(q[a] + k[a]);
        const float de = gts * v[a] * (1.0f - e * e);
        dq[a] += de;
        dk[a] += de;
        dv[a] += gts * e;
      }
    }
  }
}

// ------------------------------------------------------------------ FFI handlers
using F32 = ffi::Buffer<ffi::F32>;
using OutF32 = ffi::ResultBuffer<ffi::F32>;

void CopyUnlessAliased(float* to, const float* from, int64_t n) {
  if (to != from) std::memcpy(to, from, sizeof(float) * n);
}

ffi::Error LstmFwdImpl(ffi::ThreadPool pool, F32 xp, F32 w, F32 h0, F32 c0, F32 mask,
                       bool reverse, OutF32 a, OutF32 hc, OutF32 cc) {
  const Dims d = DimsOf(xp, h0, w);
  if (auto e = Check(d, 4); e.failure()) return e;
  SingleThreadedBlas blas;
  const Team par(pool, PartsFor(pool, d, d.H));
  const int64_t TBG = d.T * d.B * d.G, TBH = d.T * d.B * d.H, BH = d.B * d.H;
  CopyUnlessAliased(a->typed_data(), xp.typed_data(), d.problems * TBG);
  for (int64_t n = 0; n < d.problems; ++n) {
    LstmForward(par, d, reverse, w.typed_data() + n * d.H * d.G, h0.typed_data() + n * BH,
                c0.typed_data() + n * BH, mask.typed_data() + n * d.T * d.B,
                a->typed_data() + n * TBG, hc->typed_data() + n * TBH,
                cc->typed_data() + n * TBH);
  }
  return ffi::Error::Success();
}

ffi::Error LstmBwdImpl(ffi::ThreadPool pool, F32 a, F32 w, F32 cc, F32 c0, F32 mask, F32 ct_y,
                       F32 ct_h, F32 ct_c, F32 h0, F32 hc, bool reverse, OutF32 dz, OutF32 dh0,
                       OutF32 dc0, OutF32 dw) {
  const Dims d = DimsOf(ct_y, ct_h, w);
  if (auto e = Check(d, 4); e.failure()) return e;
  SingleThreadedBlas blas;
  const Team par(pool, PartsFor(pool, d, d.H));
  const int64_t TBG = d.T * d.B * d.G, TBH = d.T * d.B * d.H, BH = d.B * d.H;
  CopyUnlessAliased(dz->typed_data(), a.typed_data(), d.problems * TBG);
  std::memcpy(dh0->typed_data(), ct_h.typed_data(), sizeof(float) * d.problems * BH);
  std::memcpy(dc0->typed_data(), ct_c.typed_data(), sizeof(float) * d.problems * BH);
  for (int64_t n = 0; n < d.problems; ++n) {
    LstmBackward(par, d, reverse, w.typed_data() + n * d.H * d.G, cc.typed_data() + n * TBH,
                 c0.typed_data() + n * BH, mask.typed_data() + n * d.T * d.B,
                 ct_y.typed_data() + n * TBH, dz->typed_data() + n * TBG,
                 dh0->typed_data() + n * BH, dc0->typed_data() + n * BH);
    WeightGrad(par, d, reverse, h0.typed_data() + n * BH, hc.typed_data() + n * TBH,
               dz->typed_data() + n * TBG, dw->typed_data() + n * d.H * d.G);
  }
  return ffi::Error::Success();
}

ffi::Error GruFwdImpl(ffi::ThreadPool pool, F32 xp, F32 w, F32 b_rec, F32 h0, F32 mask,
                      bool reverse, OutF32 a, OutF32 hc, OutF32 hu) {
  const Dims d = DimsOf(xp, h0, w);
  if (auto e = Check(d, 3); e.failure()) return e;
  SingleThreadedBlas blas;
  const Team par(pool, PartsFor(pool, d, d.H));
  const int64_t TBG = d.T * d.B * d.G, TBH = d.T * d.B * d.H, BH = d.B * d.H;
  for (int64_t n = 0; n < d.problems; ++n) {
    GruForward(par, d, reverse, xp.typed_data() + n * TBG, w.typed_data() + n * d.H * d.G,
               b_rec.typed_data() + n * d.G, h0.typed_data() + n * BH,
               mask.typed_data() + n * d.T * d.B, a->typed_data() + n * 4 * TBH,
               hc->typed_data() + n * TBH, hu->typed_data() + n * d.B * d.G);
  }
  return ffi::Error::Success();
}

ffi::Error GruBwdImpl(ffi::ThreadPool pool, F32 w, F32 a, F32 hc, F32 h0, F32 mask, F32 ct_y,
                      F32 ct_h, bool reverse, OutF32 dxp, OutF32 dhw, OutF32 dh0, OutF32 dw) {
  const Dims d = DimsOf(ct_y, ct_h, w);
  if (auto e = Check(d, 3); e.failure()) return e;
  SingleThreadedBlas blas;
  const Team par(pool, PartsFor(pool, d, d.H));
  const int64_t TBG = d.T * d.B * d.G, TBH = d.T * d.B * d.H, BH = d.B * d.H;
  std::memcpy(dh0->typed_data(), ct_h.typed_data(), sizeof(float) * d.problems * BH);
  for (int64_t n = 0; n < d.problems; ++n) {
    GruBackward(par, d, reverse, w.typed_data() + n * d.H * d.G, a.typed_data() + n * 4 * TBH,
                hc.typed_data() + n * TBH, h0.typed_data() + n * BH,
                mask.typed_data() + n * d.T * d.B, ct_y.typed_data() + n * TBH,
                dxp->typed_data() + n * TBG, dhw->typed_data() + n * TBG,
                dh0->typed_data() + n * BH);
    WeightGrad(par, d, reverse, h0.typed_data() + n * BH, hc.typed_data() + n * TBH,
               dhw->typed_data() + n * TBG, dw->typed_data() + n * d.H * d.G);
  }
  return ffi::Error::Success();
}

// Additive attention over a batch of sequences (leading axes flattened), split by
// sequence among the pool's threads.
struct AttnDims {
  int64_t N, T, S, A;
};

template <typename Q, typename K>
AttnDims AttnDimsOf(const Q& qp, const K& kp) {
  auto qd = qp.dimensions();
  auto kd = kp.dimensions();
  const size_t r = qd.size();
  AttnDims d{1, qd[r - 2], kd[r - 2], qd[r - 1]};
  for (size_t i = 0; i + 2 < r; ++i) d.N *= qd[i];
  return d;
}

ffi::Error AdditiveFwdImpl(ffi::ThreadPool pool, F32 qp, F32 kp, F32 v, OutF32 out) {
  const AttnDims d = AttnDimsOf(qp, kp);
  const int64_t per_v = v.element_count() / d.A;  // one v, or one per sequence (vmap)
  const Team par(pool, PartsOf(pool, d.N));
  par.For([&](int64_t part) {
    int64_t n0, n1;
    Rows(d.N, par.parts(), part, &n0, &n1);
    for (int64_t n = n0; n < n1; ++n) {
      AdditiveForward(qp.typed_data() + n * d.T * d.A, kp.typed_data() + n * d.S * d.A,
                      v.typed_data() + (per_v > 1 ? n * per_v / d.N * d.A : 0),
                      out->typed_data() + n * d.T * d.S, d.T, d.S, d.A);
    }
  });
  return ffi::Error::Success();
}

ffi::Error AdditiveBwdImpl(ffi::ThreadPool pool, F32 qp, F32 kp, F32 v, F32 g, OutF32 dqp,
                           OutF32 dkp, OutF32 dv) {
  const AttnDims d = AttnDimsOf(qp, kp);
  const int64_t per_v = v.element_count() / d.A;
  std::fill(dqp->typed_data(), dqp->typed_data() + d.N * d.T * d.A, 0.0f);
  std::fill(dkp->typed_data(), dkp->typed_data() + d.N * d.S * d.A, 0.0f);
  std::fill(dv->typed_data(), dv->typed_data() + per_v * d.A, 0.0f);
  const Team par(pool, PartsOf(pool, d.N));
  // Each part sums dv for its sequences apart; the parts' sums are added at the end.
  std::vector<float> dv_parts(par.parts() * per_v * d.A, 0.0f);
  par.For([&](int64_t part) {
    int64_t n0, n1;
    Rows(d.N, par.parts(), part, &n0, &n1);
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t vi = per_v > 1 ? n * per_v / d.N : 0;
      AdditiveBackward(qp.typed_data() + n * d.T * d.A, kp.typed_data() + n * d.S * d.A,
                       v.typed_data() + vi * d.A, g.typed_data() + n * d.T * d.S,
                       dqp->typed_data() + n * d.T * d.A, dkp->typed_data() + n * d.S * d.A,
                       dv_parts.data() + (part * per_v + vi) * d.A, d.T, d.S, d.A);
    }
  });
  for (int64_t part = 0; part < par.parts(); ++part) {
    for (int64_t i = 0; i < per_v * d.A; ++i) dv->typed_data()[i] += dv_parts[part * per_v * d.A + i];
  }
  return ffi::Error::Success();
}

// ------------------------------------------------------ softmax cross-entropy rows
// Rows of logits [N, V] (leading axes flattened), one bias b [V] per problem (vmap), and
// targets y [N]: the forward pass adds the bias in place (the buffer is aliased) and
// writes each row's log-sum-exp and -log softmax[y]; the backward pass overwrites the
// logits with (softmax - onehot(y)) * g. Each row is read once from memory; XLA makes
// three to four passes over the N x V logits for the same.
ffi::Error SoftmaxNllFwdImpl(ffi::ThreadPool pool, F32 logits, F32 b, ffi::Buffer<ffi::S32> y,
                             OutF32 out, OutF32 nll, OutF32 lse) {
  const auto ld = logits.dimensions();
  const int64_t V = ld[ld.size() - 1], N = logits.element_count() / V;
  const int64_t per_b = b.element_count() / V;
  CopyUnlessAliased(out->typed_data(), logits.typed_data(), N * V);
  const Team par(pool, PartsOf(pool, N / 8));
  par.For([&](int64_t part) {
    int64_t n0, n1;
    Rows(N, par.parts(), part, &n0, &n1);
    for (int64_t n = n0; n < n1; ++n) {
      float* __restrict l = out->typed_data() + n * V;
      const float* __restrict bn = b.typed_data() + (n * per_b / N) * V;
      float m = -INFINITY;
      for (int64_t v = 0; v < V; ++v) {
        l[v] += bn[v];
        m = std::max(m, l[v]);
      }
      float sum = 0.0f;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(l[v] - m);
      const float row_lse = m + std::log(sum);
      lse->typed_data()[n] = row_lse;
      nll->typed_data()[n] = row_lse - l[y.typed_data()[n]];
    }
  });
  return ffi::Error::Success();
}

ffi::Error SoftmaxNllBwdImpl(ffi::ThreadPool pool, F32 logits, F32 lse, ffi::Buffer<ffi::S32> y,
                             F32 g, OutF32 d) {
  const auto ld = logits.dimensions();
  const int64_t V = ld[ld.size() - 1], N = logits.element_count() / V;
  CopyUnlessAliased(d->typed_data(), logits.typed_data(), N * V);
  const Team par(pool, PartsOf(pool, N / 8));
  par.For([&](int64_t part) {
    int64_t n0, n1;
    Rows(N, par.parts(), part, &n0, &n1);
    for (int64_t n = n0; n < n1; ++n) {
      float* __restrict row = d->typed_data() + n * V;
      const float s = lse.typed_data()[n], gn = g.typed_data()[n];
      for (int64_t v = 0; v < V; ++v) row[v] = std::exp(row[v] - s) * gn;
      row[y.typed_data()[n]] -= gn;
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabSoftmaxNllFwd, SoftmaxNllFwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabSoftmaxNllBwd, SoftmaxNllBwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<ffi::Buffer<ffi::S32>>().Arg<F32>()
                                  .Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabAdditiveFwd, AdditiveFwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabAdditiveBwd, AdditiveBwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabLstmFwd, LstmFwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Attr<bool>("reverse")
                                  .Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabLstmBwd, LstmBwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Attr<bool>("reverse")
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabGruFwd, GruFwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Attr<bool>("reverse")
                                  .Ret<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnlabGruBwd, GruBwdImpl,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>()
                                  .Attr<bool>("reverse")
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>());

extern "C" void rnnlab_set_blas(void* sgemm, void* set_threads, void* get_threads) {
  g_sgemm = reinterpret_cast<Sgemm>(sgemm);
  g_set_threads = reinterpret_cast<SetThreads>(set_threads);
  g_get_threads = reinterpret_cast<GetThreads>(get_threads);
}
