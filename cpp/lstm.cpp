// lstm.cpp — LSTM forward and backward through time (equations and layout in lstm.h).
//
// The fast path is shaped like the cuDNN / oneDNN RNN engines:
//   1. one GEMM projects the inputs of all T steps at once:   Z = X·W + b      (T·B, 4H)
//   2. per step, one GEMM per tile adds the recurrence:        Z_t += h_{t−1}·U
//      then one fused element-wise pass applies the gates and updates (c_t, h_t);
//   3. backward runs the same loop in reverse, keeping dZ_t for every step, and the weight
//      gradients come after the loop as large GEMMs:  dW = Xᵀ·dZ,  dU = Hᵀ·dZ,  dX = dZ·Wᵀ.
// The training buffers are time-major (T, B, ·), so each step is a contiguous block; an
// inference forward leaves x and the outputs in the caller's (B, T, ·) order instead of
// reordering them. All buffers are allocated before the time loop. Threads own fixed
// (batch × unit) tiles of each step.
#include "lstm.h"

#include "activations.h"
#include "gemm.h"

#include <algorithm>
#include <cstring>

namespace lstmfast {

GateTiling GateTiling::choose(Index B, Index H) {
  GateTiling t;
  t.B = B;
  t.H = H;
  // Batch tiles need no synchronisation: a thread runs its rows through all T steps alone,
  // so with 32 rows or more the batch is cut into an even number (≥ 2) of tiles of about 32
  // rows (32 → 16 + 16, 64 → 32 + 32, 100 → 4 × 25) and units are not split. A smaller batch
  // gives each tile too few rows for an efficient GEMM; then the units are cut in two halves
  // (when H > 64), which costs a barrier per step but halves the recurrent weights each
  // thread streams through per step. So are they from H = 768 on, whatever the batch: U is
  // then 9 MB or more (float), more than stays in L3 from one step to the next, and each
  // step's product is bound by streaming it from memory — half of it per thread, for twice
  // the rows, instead of all of it for each. The tiling depends on B and H only, never on
  // the number of threads, and so do the results.
  if (B >= 32 && H < 768) {
    Index n = std::max<Index>(2, (B + 16) / 32);
    n += n % 2;
    t.batch_tile = (B + n - 1) / n;
    t.unit_tile = H;
  } else {
    t.batch_tile = B;
    t.unit_tile = H <= 64 ? H : ((H + 1) / 2 + 7) / 8 * 8;
  }
  t.n_batch_tiles = (B + t.batch_tile - 1) / t.batch_tile;
  t.n_unit_tiles = (H + t.unit_tile - 1) / t.unit_tile;
  return t;
}

namespace {

using activations::activate_span;
using activations::mul_derivative;

// Packs, for every unit tile, the recurrent weights its step GEMM multiplies.
//   forward:  z_tile += h·U[:, tile's 4w columns]            B = (H × 4w)
//   backward: dh_tile = dz·U[tile's w rows, :]ᵀ               B = (4H × w)
// Returns the panels; offsets[k] is where tile k's start. U is in Keras's order; colmap
// (tl.keras_columns(), or nullptr with one unit tile) maps tile order to its columns.
// finite, when given (forward only), is set to whether every value of U is finite, tested
// on the way. A large forward U is written around the caches (PackedGemm::streams_packing).
template <typename S>
Buffer<S> pack_recurrent(const GateTiling& tl, const S* U, bool transposed, std::vector<Index>& offsets,
                         const Index* colmap, bool* finite = nullptr) {
  using PG = PackedGemm<S>;
  const Index H = tl.H, G = kNumGates * H;
  offsets.assign(tl.n_unit_tiles + 1, 0);
  for (Index k = 0; k < tl.n_unit_tiles; ++k) {
    const Index w = tl.width(k);
    offsets[k + 1] = offsets[k] + (transposed ? PG::packed_size(G, w) : PG::packed_size(H, kNumGates * w));
  }
  Buffer<S> panels(offsets.back());
  // Every (unit tile, K chunk) piece on its own, all in parallel.
  const Index nk = PG::num_chunks(transposed ? G : H);
  const bool stream = !transposed && PG::streams_packing(H, G);
  std::vector<char> ok(tl.n_unit_tiles * nk, 1);
  parallel_for_tiles(tl.n_unit_tiles * nk, [&](Index t) {
    const Index k = t / nk, k0 = t % nk * PG::kKc, u0 = tl.u0(k), w = tl.width(k);
    const Index c0 = kNumGates * u0;  // the tile's first packed column
    if (transposed) PG::pack_chunk(G, w, k0, U + u0 * G, 1, G, panels.data() + offsets[k], nullptr, colmap);
    else ok[t] = PG::pack_chunk(H, kNumGates * w, k0, colmap ? U : U + c0, G, 1, panels.data() + offsets[k],
                                colmap ? colmap + c0 : nullptr, nullptr, finite != nullptr, stream);
  });
  if (finite) *finite = all_set(ok);
  return panels;
}

// W (D × 4H) packed for the input projection Z = X·W + b, column tiles cols wide, its
// columns in tile order (colmap: tile order to Keras's columns, or nullptr). finite, when
// given, is set to whether every value of W is finite, tested on the way. A large W is
// written around the caches (PackedGemm::streams_packing).
template <typename S>
Buffer<S> pack_input_weights(Index D, Index G, Index cols, const S* W, const Index* colmap,
                             bool* finite = nullptr) {
  using PG = PackedGemm<S>;
  Buffer<S> panels(PG::packed_size(D, G));
  const bool ok = PG::pack_parallel(D, G, cols, W, G, 1, panels.data(), colmap, nullptr, finite != nullptr,
                                    PG::streams_packing(D, G));
  if (finite) *finite = ok;
  return panels;
}

// b in tile order (packed column n is Keras's column colmap[n]); zeros without a bias.
template <typename S>
std::vector<S> tile_order_bias(Index G, const S* b, const Index* colmap) {
  std::vector<S> bias(G, S(0));
  if (b)
    for (Index n = 0; n < G; ++n) bias[n] = b[colmap ? colmap[n] : n];
  return bias;
}

// A masked step outputs zeros (instead of the previous output) when asked to, and before the
// row's first real step.
template <typename S>
inline bool output_is_zero(const LSTMCache<S>& k, Index s, Index b) {
  if (!k.has_mask || k.mask[s * k.cfg.B + b]) return false;
  return k.cfg.zero_output_for_mask || s < k.first_real[b];
}

inline Index time_index(const LSTMConfig& cfg, Index s) {
  return cfg.go_backwards ? cfg.T - 1 - s : s;
}

// Runs body(tile) for every tile of every step s = 0..T−1 (or reversed), each thread
// owning the tiles k ≡ tid (mod threads) for the whole loop. When units are split across
// tiles, step s needs all of step s−1 and the threads meet at a barrier; otherwise each
// thread runs its batch rows through time on its own.
template <typename Body>
void time_loop(const GateTiling& tl, Index T, bool reverse, Body&& body) {
  const Index ntiles = tl.n_batch_tiles * tl.n_unit_tiles;
  const int nt = static_cast<int>(std::min<Index>(num_threads(), ntiles));
  const bool barrier = tl.n_unit_tiles > 1 && nt > 1;
#pragma omp parallel num_threads(nt)
  {
    DenormalGuard guard;
    const int tid = omp_get_thread_num();
    for (Index n = 0; n < T; ++n) {
      const Index s = reverse ? T - 1 - n : n;
      for (Index k = tid; k < ntiles; k += nt) body(s, k);
      if (barrier) {
#pragma omp barrier
      }
    }
  }
}

}  // namespace

template <typename S>
const typename LSTMPackedWeights<S>::Panels& LSTMPackedWeights<S>::panels(const GateTiling& tl,
                                                                          Index cols) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : panels_)
    if (p->unit_tile == tl.unit_tile && p->cols == cols) return *p;
  auto p = std::make_unique<Panels>();
  p->unit_tile = tl.unit_tile;
  p->cols = cols;
  const std::vector<Index> keras_cols = tl.identity() ? std::vector<Index>() : tl.keras_columns();
  const Index* colmap = keras_cols.empty() ? nullptr : keras_cols.data();
  p->W = pack_input_weights(D, kNumGates * H, cols, kernel.data(), colmap);
  p->U = pack_recurrent(tl, recurrent_kernel.data(), false, p->U_offsets, colmap);
  p->bias = tile_order_bias(kNumGates * H, has_bias ? bias.data() : nullptr, colmap);
  panels_.push_back(std::move(p));
  return *panels_.back();
}

// =======================================================================================
// Forward
// =======================================================================================
template <typename S>
void lstm_forward(const LSTMConfig& cfg, const LSTMInputs<S>& in, S* outputs, S* h_T, S* c_T,
                  LSTMCache<S>* cache) {
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H, G = kNumGates * H;
  const GateTiling tl = GateTiling::choose(B, H);
  LSTMCache<S> scratch;
  LSTMCache<S>& k = cache ? *cache : scratch;
  k.cfg = cfg;
  k.tiling = tl;
  k.has_bias = in.bias != nullptr;
  k.has_mask = in.mask != nullptr;

  // The weights are packed for the products straight from the caller's matrices, through a
  // map from tile order to Keras's columns (none with one unit tile, where the orders agree).
  const S* W = in.kernel;
  const S* U = in.recurrent_kernel;
  const std::vector<Index> keras_cols = tl.identity() ? std::vector<Index>() : tl.keras_columns();
  const Index* colmap = keras_cols.empty() ? nullptr : keras_cols.data();
  const bool constant = cfg.constant_input;
  const Index Tx = constant ? 1 : T;
  if (cache) {  // Uᵀ and Wᵀ for the backward, while the weights are at hand
    k.UT_panels = pack_recurrent(tl, U, true, k.UT_offsets, colmap);
    k.WT_panels.reset(PackedGemm<S>::packed_size(G, D));
    PackedGemm<S>::pack_parallel(G, D, PackedGemm<S>::tile_cols(Tx * B, D), W, 1, G,
                                 k.WT_panels.data(), nullptr, colmap);
  }
  // W, U and b in tile order: packed here, or once before for many calls (inference only;
  // the training forward packs Uᵀ and Wᵀ above and keeps nothing packed of W and U).
  const Index cols = PackedGemm<S>::tile_cols(Tx * B, G);
  const auto* pre = in.packed && !cache ? &in.packed->panels(tl, cols) : nullptr;
  const std::vector<S> bias_here = pre ? std::vector<S>() : tile_order_bias(G, in.bias, colmap);
  const S* bias = pre ? pre->bias.data() : bias_here.data();

  // Dropout masks (sampled once per sequence by the caller) and the step mask.
  if (in.input_dropout) k.m_x.assign(in.input_dropout, in.input_dropout + B * D);
  else k.m_x.clear();
  if (in.recurrent_dropout) k.m_h.assign(in.recurrent_dropout, in.recurrent_dropout + B * H);
  else k.m_h.clear();
  k.mask.clear();
  k.first_real.assign(B, 0);
  if (in.mask) {
    k.mask.resize(T * B);
    k.first_real.assign(B, T);
    for (Index s = T - 1; s >= 0; --s)
      for (Index b = 0; b < B; ++b)
        if ((k.mask[s * B + b] = in.mask[b * T + time_index(cfg, s)] != 0)) k.first_real[b] = s;
  }

  // x_s ⊙ m_x, time-major in processing order: X[s, b, :] = x[b, t(s), :] ⊙ m_x[b, :]
  // (one step's worth when the input is constant), for the backward's dW = Xᵀ·dZ. A forward
  // without a cache or input dropout projects the caller's x as it lies: Z is then
  // batch-major, Z[b, t, :], and step s reads its rows T·4H apart.
  const bool x_direct = !cache && !constant && !in.input_dropout;
  if (!x_direct) {
    k.x.reset(Tx * B * D);
    parallel_for_tiles(Tx, [&](Index s) {
      const Index t = constant ? 0 : time_index(cfg, s);
      for (Index b = 0; b < B; ++b) {
        ArrMap<S> dst(k.x.data() + (s * B + b) * D, D);
        CArrMap<S> src(in.x + (b * Tx + t) * D, D);
        if (in.input_dropout) dst = src * CArrMap<S>(in.input_dropout + b * D, D);
        else dst = src;
      }
    });
  }

  // Z = X·W + b for all steps in one GEMM: (T·B, D)·(D, 4H) → (T·B, 4H). A constant input
  // is projected once, z0 = x·W + b (B, 4H), and the loop's GEMM adds it to every step's Z.
  k.gates.reset(T * B * G);
  Buffer<S> z0(constant ? B * G : 0);
  // Weights packed here are tested for NaN and ±inf on the way when the caller asks.
  bool finite = true;
  bool* const check = in.check_weights ? &finite : nullptr;
  {
    const Buffer<S> W_here = pre ? Buffer<S>() : pack_input_weights(D, G, cols, W, colmap, check);
    if (!finite) throw NonFiniteWeights("kernel");
    PackedGemm<S>::run_parallel(Tx * B, G, D, cols, x_direct ? in.x : k.x.data(), D, 1,
                                pre ? pre->W.data() : W_here.data(),
                                constant ? z0.data() : k.gates.data(), G, false, bias);
  }
  // Step s's row of sample b is z_rows(s) + b·z_stride.
  const Index z_stride = x_direct ? T * G : G;
  auto z_rows = [&](Index s) { return k.gates.data() + (x_direct ? time_index(cfg, s) * G : s * B * G); };

  // States: h[s] is h_{s−1} (h[0] = h0), likewise c; the recurrent product reads
  // h_{s−1} ⊙ m_h, double-buffered so one step's readers never see the next step's writers.
  // A forward without a cache or a mask writes h_s straight into its output rows, which the
  // next step reads (T·H apart), and keeps two rows of c per sample.
  const bool h_direct = !cache && !k.has_mask && cfg.return_sequences;
  k.h.reset((h_direct ? 1 : T + 1) * B * H);
  k.c.reset((h_direct ? 2 : T + 1) * B * H);
  auto h_prev_rows = [&](Index s) -> const S* {  // h_{s−1} of sample 0; h_stride(s) apart
    return h_direct ? (s == 0 ? k.h.data() : outputs + (s - 1) * H) : k.h.data() + s * B * H;
  };
  auto h_stride = [&](Index s) { return h_direct && s > 0 ? T * H : H; };
  auto h_next = [&](Index s, Index b) {  // where step s writes h_s of sample b
    return h_direct ? outputs + (b * T + s) * H : k.h.data() + ((s + 1) * B + b) * H;
  };
  auto c_rows = [&](Index s) { return k.c.data() + (h_direct ? s % 2 : s) * B * H; };  // c[s]
  if (in.h0) std::copy(in.h0, in.h0 + B * H, k.h.data());
  else std::fill(k.h.data(), k.h.data() + B * H, S(0));
  if (in.c0) std::copy(in.c0, in.c0 + B * H, k.c.data());
  else std::fill(k.c.data(), k.c.data() + B * H, S(0));
  const bool drop_h = !k.m_h.empty();
  std::vector<S> hd(drop_h ? 2 * B * H : 0);
  if (drop_h)
    for (Index j = 0; j < B * H; ++j) hd[j] = k.h[j] * k.m_h[j];

  std::vector<Index> offsets_here;
  const Buffer<S> U_here = pre ? Buffer<S>() : pack_recurrent(tl, U, false, offsets_here, colmap, check);
  if (!finite) throw NonFiniteWeights("recurrent_kernel");
  const S* U_panels = pre ? pre->U.data() : U_here.data();
  const std::vector<Index>& offsets = pre ? pre->U_offsets : offsets_here;

  const Activation act = cfg.activation;
  const RecurrentActivation ract = cfg.recurrent_activation;
  time_loop(tl, T, false, [&](Index s, Index tile) {
    const Index b0 = (tile / tl.n_unit_tiles) * tl.batch_tile;
    const Index bn = std::min(tl.batch_tile, B - b0);
    const Index ut = tile % tl.n_unit_tiles, u0 = tl.u0(ut), w = tl.width(ut), c0 = kNumGates * u0;
    S* Z = z_rows(s);
    const S* h_prev = drop_h ? hd.data() + (s % 2) * B * H : h_prev_rows(s);
    const Index h_ld = drop_h ? H : h_stride(s);

    // z_t += (h_{t−1}⊙m_h)·U for this tile's rows and its four gate blocks
    // (constant input: z_t = z0 + (h_{t−1}⊙m_h)·U); U is walked backwards at odd steps.
    // Without an initial state h_{−1} = 0 and the first step's product adds nothing.
    if (s > 0 || in.h0) {
      PackedGemm<S>::run(bn, kNumGates * w, H, h_prev + b0 * h_ld, h_ld, 1, U_panels + offsets[ut],
                         Z + b0 * z_stride + c0, z_stride, !constant,
                         constant ? z0.data() + b0 * G + c0 : nullptr, G, s % 2 == 1);
    } else if (constant) {
      for (Index b = b0; b < b0 + bn; ++b)
        std::copy_n(z0.data() + b * G + c0, kNumGates * w, Z + b * z_stride + c0);
    }

    const S* c_prev = c_rows(s);
    S* c_next = c_rows(s + 1);
    for (Index b = b0; b < b0 + bn; ++b) {
      const S* cp = c_prev + b * H + u0;
      S* cn = c_next + b * H + u0;
      S* hn = h_next(s, b) + u0;
      if (k.has_mask && !k.mask[s * B + b]) {  // masked: h_t = h_{t−1}, c_t = c_{t−1}
        std::memcpy(cn, cp, sizeof(S) * w);
        std::memcpy(hn, h_prev_rows(s) + b * h_stride(s) + u0, sizeof(S) * w);
      } else {
        S* z = Z + b * z_stride + c0;
        activate_span(ract, z, z, 2 * w);          // i = σ(z_i), f = σ(z_f) (side by side)
        activate_span(act, z + 2 * w, z + 2 * w, w);  // g = φ(z_c)
        activate_span(ract, z + 3 * w, z + 3 * w, w);  // o = σ(z_o)
        ArrMap<S> i(z, w), f(z + w, w), g(z + 2 * w, w), o(z + 3 * w, w);
        ArrMap<S> c_new(cn, w), h_new(hn, w);
        c_new = f * CArrMap<S>(cp, w) + i * g;  // c_t = f⊙c_{t−1} + i⊙g
        activate_span(act, hn, cn, w);          // h_t = o⊙φ(c_t)
        h_new *= o;
      }
      if (drop_h) {
        S* hd_next = hd.data() + ((s + 1) % 2) * B * H + b * H + u0;
        ArrMap<S>(hd_next, w) = CArrMap<S>(hn, w) * CArrMap<S>(k.m_h.data() + b * H + u0, w);
      }
    }
  });

  // Outputs in processing order, as Keras returns them.
  auto output_row = [&](Index s, Index b, S* dst) {
    if (output_is_zero(k, s, b)) std::fill(dst, dst + H, S(0));
    else std::memcpy(dst, k.h.data() + ((s + 1) * B + b) * H, sizeof(S) * H);
  };
  if (h_direct) {  // already in place; h_T is each sample's last output row
    for (Index b = 0; b < B; ++b) std::memcpy(h_T + b * H, h_next(T - 1, b), sizeof(S) * H);
  } else {
    if (cfg.return_sequences) {
      parallel_for_tiles(B, [&](Index b) {
        for (Index s = 0; s < T; ++s) output_row(s, b, outputs + (b * T + s) * H);
      });
    } else {
      for (Index b = 0; b < B; ++b) output_row(T - 1, b, outputs + b * H);
    }
    std::memcpy(h_T, k.h.data() + T * B * H, sizeof(S) * B * H);
  }
  std::memcpy(c_T, c_rows(T), sizeof(S) * B * H);
}

// =======================================================================================
// Backward through time
// =======================================================================================
template <typename S>
void lstm_backward(const LSTMCache<S>& k, const S* d_outputs, const S* d_hT, const S* d_cT,
                   const LSTMGrads<S>& grads) {
  const LSTMConfig& cfg = k.cfg;
  const GateTiling& tl = k.tiling;
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H, G = kNumGates * H;
  const Activation act = cfg.activation;
  const RecurrentActivation ract = cfg.recurrent_activation;
  const bool drop_h = !k.m_h.empty();
  auto real_step = [&](Index s, Index b) { return !k.has_mask || k.mask[s * B + b]; };
  const Buffer<S>& UT_panels = k.UT_panels;
  const std::vector<Index>& offsets = k.UT_offsets;

  Buffer<S> dZ(T * B * G);                  // dL/dz_t, tile-packed, every step
  std::vector<S> dh(B * H), dc(B * H, S(0));  // dL/dh_t and dL/dc_t, carried backwards
  std::vector<S> pass(k.has_mask ? B * H : 0, S(0));  // dh_t passed through masked steps
  if (d_cT) std::copy(d_cT, d_cT + B * H, dc.begin());

  // dL/dh_s of this tile before step s is undone: the output gradient of step s, plus the
  // carry from step s+1 through z_{s+1} = … + (h_s⊙m_h)·U, plus what a masked step passed on.
  auto gather_dh = [&](Index s, Index b0, Index bn, Index ut, Index u0, Index w) {
    MapR<S> dh_t(dh.data() + b0 * H + u0, bn, w, Eigen::OuterStride<>(H));
    if (s == T - 1) {
      if (d_hT) dh_t = CMapR<S>(d_hT + b0 * H + u0, bn, w, Eigen::OuterStride<>(H));
      else dh_t.setZero();
    } else {
      // dh_s = dz_{s+1}·Uᵀ over this tile's units: (bn, 4H)·(4H, w); Uᵀ walked backwards
      // at odd steps
      PackedGemm<S>::run(bn, w, G, dZ.data() + ((s + 1) * B + b0) * G, G, 1,
                         UT_panels.data() + offsets[ut], dh.data() + b0 * H + u0, H, false, nullptr, 0,
                         s % 2 == 1);
      for (Index b = b0; b < b0 + bn; ++b) {
        ArrMap<S> row(dh.data() + b * H + u0, w);
        if (drop_h) row *= CArrMap<S>(k.m_h.data() + b * H + u0, w);
        if (k.has_mask) row += CArrMap<S>(pass.data() + b * H + u0, w);
      }
    }
    if (!d_outputs) return;
    for (Index b = b0; b < b0 + bn; ++b) {
      if (output_is_zero(k, s, b)) continue;  // a constant zero output
      if (cfg.return_sequences)
        ArrMap<S>(dh.data() + b * H + u0, w) += CArrMap<S>(d_outputs + (b * T + s) * H + u0, w);
      else if (s == T - 1)
        ArrMap<S>(dh.data() + b * H + u0, w) += CArrMap<S>(d_outputs + b * H + u0, w);
    }
  };

  // db = Σ_s Σ_b dz_s[b]: each batch tile sums its own rows inside the loop, while they are
  // in cache (steps in processing order backwards, rows in order), into its own row here.
  std::vector<S> db_tiles(grads.dbias ? tl.n_batch_tiles * G : 0, S(0));
  const Index ntiles = tl.n_batch_tiles * tl.n_unit_tiles;
  std::vector<std::vector<S>> scratch(std::min<Index>(num_threads(), ntiles), std::vector<S>(2 * tl.unit_tile));
  time_loop(tl, T, true, [&](Index s, Index tile) {
    const Index bt = tile / tl.n_unit_tiles, b0 = bt * tl.batch_tile;
    const Index bn = std::min(tl.batch_tile, B - b0);
    const Index ut = tile % tl.n_unit_tiles, u0 = tl.u0(ut), w = tl.width(ut), c0 = kNumGates * u0;
    gather_dh(s, b0, bn, ut, u0, w);
    S* tmp = scratch[omp_get_thread_num()].data();
    ArrMap<S> phi_c(tmp, w), dc_h(tmp + w, w);

    for (Index b = b0; b < b0 + bn; ++b) {
      S* dz = dZ.data() + (s * B + b) * G + c0;
      ArrMap<S> d_h(dh.data() + b * H + u0, w), d_c(dc.data() + b * H + u0, w);
      if (!real_step(s, b)) {  // h_t = h_{t−1}, c_t = c_{t−1}: both gradients pass through
        std::fill(dz, dz + kNumGates * w, S(0));
        ArrMap<S>(pass.data() + b * H + u0, w) = d_h;
        continue;
      }
      if (k.has_mask) ArrMap<S>(pass.data() + b * H + u0, w).setZero();
      const S* gate = k.gates.data() + (s * B + b) * G + c0;
      CArrMap<S> i(gate, w), f(gate + w, w), g(gate + 2 * w, w), o(gate + 3 * w, w);
      CArrMap<S> c_prev(k.c.data() + (s * B + b) * H + u0, w);
      ArrMap<S> dz_i(dz, w), dz_f(dz + w, w), dz_g(dz + 2 * w, w), dz_o(dz + 3 * w, w);

      activate_span(act, phi_c.data(), k.c.data() + ((s + 1) * B + b) * H + u0, w);  // φ(c_t)
      // do: through h_t = o⊙φ(c_t)
      dz_o = d_h * phi_c;
      mul_derivative(ract, dz_o, o);
      // dc_t: through h_t = o⊙φ(c_t), plus the carry from t+1 (already in d_c)
      dc_h = d_h * o;
      mul_derivative(act, dc_h, phi_c);
      d_c += dc_h;
      // di, dg, df: through c_t = f⊙c_{t−1} + i⊙g
      dz_i = d_c * g;
      mul_derivative(ract, dz_i, i);
      dz_g = d_c * i;
      mul_derivative(act, dz_g, g);
      dz_f = d_c * c_prev;
      mul_derivative(ract, dz_f, f);
      // dc_{t−1} = dc_t ⊙ f
      d_c *= f;
      if (grads.dbias)
        ArrMap<S>(db_tiles.data() + bt * G + c0, kNumGates * w) += CArrMap<S>(dz, kNumGates * w);
    }
  });

  // Gradients of the initial state: dh0 = dz_0·Uᵀ ⊙ m_h (+ pass), dc0 = carried dc.
  parallel_for_tiles(tl.n_batch_tiles * tl.n_unit_tiles, [&](Index tile) {
    const Index b0 = (tile / tl.n_unit_tiles) * tl.batch_tile;
    const Index bn = std::min(tl.batch_tile, B - b0);
    const Index ut = tile % tl.n_unit_tiles, u0 = tl.u0(ut), w = tl.width(ut);
    PackedGemm<S>::run(bn, w, G, dZ.data() + b0 * G, G, 1, UT_panels.data() + offsets[ut],
                       grads.dh0 + b0 * H + u0, H, false);
    for (Index b = b0; b < b0 + bn; ++b) {
      ArrMap<S> row(grads.dh0 + b * H + u0, w);
      if (drop_h) row *= CArrMap<S>(k.m_h.data() + b * H + u0, w);
      if (k.has_mask) row += CArrMap<S>(pass.data() + b * H + u0, w);
    }
  });
  std::copy(dc.begin(), dc.end(), grads.dc0);

  // Weight gradients after the loop, as large GEMMs over all T·B rows, straight into the
  // caller's arrays: dZ's columns are packed in Keras's order (through a map from tile order).
  using PG = PackedGemm<S>;
  const std::vector<Index> tiled_cols = tl.identity() ? std::vector<Index>() : tl.tiled_columns();
  const Index* colmap = tiled_cols.empty() ? nullptr : tiled_cols.data();
  Buffer<S> dZ_panels(PG::packed_size(T * B, G));
  // dZ's panels serve dW (D rows) and dU (H rows): one tile width for both.
  const Index dz_cols = PG::tile_cols(std::min(D, H), G);
  PG::pack_parallel(T * B, G, dz_cols, dZ.data(), G, 1, dZ_panels.data(), colmap);
  // A constant input meets the sum of the steps' gradients: Σ_s dz_s (B, 4H), summed in
  // step order for every element.
  const bool constant = cfg.constant_input;
  const Index Tx = constant ? 1 : T;
  Buffer<S> dZ_sum(constant ? B * G : 0), dZ_sum_panels(constant ? PG::packed_size(B, G) : 0);
  if (constant) {
    parallel_for_tiles(B, [&](Index b) {
      ArrMap<S> acc(dZ_sum.data() + b * G, G);
      acc = CArrMap<S>(dZ.data() + b * G, G);
      for (Index s = 1; s < T; ++s) acc += CArrMap<S>(dZ.data() + (s * B + b) * G, G);
    });
    PG::pack_parallel(B, G, dz_cols, dZ_sum.data(), G, 1, dZ_sum_panels.data(), colmap);
  }
  // dW = Xᵀ·dZ: (D, T·B)·(T·B, 4H); constant input: xᵀ·Σ_s dz_s, (D, B)·(B, 4H)
  PG::run_parallel(D, G, Tx * B, dz_cols, k.x.data(), 1, D, constant ? dZ_sum_panels.data() : dZ_panels.data(),
                   grads.dkernel, G, false);
  // dU = (H_{prev}⊙m_h)ᵀ·dZ: (H, T·B)·(T·B, 4H); H_prev = h_{−1} … h_{T−2}
  const S* h_prev = k.h.data();
  Buffer<S> hd;
  if (drop_h) {
    hd.reset(T * B * H);
    parallel_for_tiles(T, [&](Index s) {
      for (Index j = 0; j < B * H; ++j) hd[s * B * H + j] = k.h[s * B * H + j] * k.m_h[j];
    });
    h_prev = hd.data();
  }
  PG::run_parallel(H, G, T * B, dz_cols, h_prev, 1, H, dZ_panels.data(), grads.drecurrent_kernel, G, false);
  // db: the batch tiles' sums, added in tile order.
  if (grads.dbias) {
    ArrMap<S> acc(db_tiles.data(), G);
    for (Index bt = 1; bt < tl.n_batch_tiles; ++bt) acc += CArrMap<S>(db_tiles.data() + bt * G, G);
    for (Index j = 0; j < G; ++j) grads.dbias[j] = db_tiles[colmap ? colmap[j] : j];  // to Keras's order
  }
  // dX = dZ·Wᵀ: (T·B, 4H)·(4H, D), then back to (B, T, D) in time order, ⊙ m_x.
  // Constant input: dx = (Σ_s dz_s)·Wᵀ ⊙ m_x, (B, D). Skipped when the input needs no
  // gradient (a model's first layer, fed with data): a quarter of the backward's products
  // when D = H.
  if (!grads.dx) return;
  Buffer<S> dX(Tx * B * D);
  PG::run_parallel(Tx * B, D, G, PG::tile_cols(Tx * B, D), constant ? dZ_sum.data() : dZ.data(), G, 1,
                   k.WT_panels.data(), dX.data(), D, false);
  parallel_for_tiles(Tx, [&](Index s) {
    const Index t = constant ? 0 : time_index(cfg, s);
    for (Index b = 0; b < B; ++b) {
      ArrMap<S> dst(grads.dx + (b * Tx + t) * D, D);
      CArrMap<S> src(dX.data() + (s * B + b) * D, D);
      if (!k.m_x.empty()) dst = src * CArrMap<S>(k.m_x.data() + b * D, D);
      else dst = src;
    }
  });
}

#define LSTMFAST_INSTANTIATE(S)                                                                    \
  template void lstm_forward<S>(const LSTMConfig&, const LSTMInputs<S>&, S*, S*, S*, LSTMCache<S>*); \
  template void lstm_backward<S>(const LSTMCache<S>&, const S*, const S*, const S*,                 \
                                 const LSTMGrads<S>&);                                              \
  template class LSTMPackedWeights<S>;
LSTMFAST_INSTANTIATE(float)
LSTMFAST_INSTANTIATE(double)
#undef LSTMFAST_INSTANTIATE

}  // namespace lstmfast
