// lstm.cpp — LSTM forward and backward through time: the time loops and the equations.
//
// Dimensions: B batch, T time steps, D input features, H units, G = 4H gate columns;
// s is the processing step (t = s, or T−1−s with go_backwards). Weights and equations: lstm.h.
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
// (batch × unit) tiles of each step (lstm_tiling.h); a tile's four gate blocks lie side by
// side, [i | f | c | o], each w units wide.
#include "lstm.h"

#include <algorithm>
#include <cstring>

#include "activations.h"
#include "gemm.h"
#include "lstm_tiling.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

static_assert(kStepProjectionD <= PackedGemm<float>::kKc && kStepProjectionD <= PackedGemm<double>::kKc,
              "the step projection reads the packed W as one K chunk");

namespace {

using activations::mul_derivative;

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

// Walk the packed recurrent weights backwards at odd steps (PackedGemm::run).
inline Walk step_walk(Index s) { return s % 2 == 1 ? Walk::Backwards : Walk::Forwards; }

// One LSTM cell over w units of one sample. z holds the unit tile's pre-activations
// [z_i | z_f | z_c | z_o] and is overwritten by the gates [i | f | g | o]; c_prev, c, h are w
// wide, and c may be c_prev (the update is then in place).
//   i = σ(z_i), f = σ(z_f), g = φ(z_c), o = σ(z_o)
//   c_t = f ⊙ c_{t−1} + i ⊙ g
//   h_t = o ⊙ φ(c_t)
// float: one pass over the units, a packet of units at a time with its gates, c_t and h_t in
// registers (cell_row). double (gradient checks): Eigen's array expressions, step by step.
using activations::FloatPacket;
struct CellPacket {
  FloatPacket i, f, g, o, c, h;
};

// The cell of units [j, j + PS) (sig: σ's packet function, act: φ's).
template <typename Sig, typename Act>
EIGEN_ALWAYS_INLINE CellPacket cell_packet(const Sig& sig, const Act& act, const float* z, Index w,
                                           const float* c_prev, Index j) {
  using namespace Eigen::internal;
  CellPacket p;
  p.i = sig(ploadu<FloatPacket>(z + j));          // i = σ(z_i)
  p.f = sig(ploadu<FloatPacket>(z + w + j));      // f = σ(z_f)
  p.g = act(ploadu<FloatPacket>(z + 2 * w + j));  // g = φ(z_c)
  p.o = sig(ploadu<FloatPacket>(z + 3 * w + j));  // o = σ(z_o)
  p.c = padd(pmul(p.f, ploadu<FloatPacket>(c_prev + j)), pmul(p.i, p.g));  // c_t = f ⊙ c_{t−1} + i ⊙ g
  p.h = pmul(act(p.c), p.o);                                               // h_t = o ⊙ φ(c_t)
  return p;
}

template <bool KeepGates>
EIGEN_ALWAYS_INLINE void store_cell_packet(const CellPacket& p, float* z, Index w, float* c, float* h, Index j) {
  using namespace Eigen::internal;
  if constexpr (KeepGates) {
    pstoreu(z + j, p.i);
    pstoreu(z + w + j, p.f);
    pstoreu(z + 2 * w + j, p.g);
    pstoreu(z + 3 * w + j, p.o);
  }
  pstoreu(c + j, p.c);
  pstoreu(h + j, p.h);
}

// Everything the row calls is inlined into it (flatten): left to itself the compiler calls
// Eigen's tanh as a function twice per packet, and the registers that hold the last packet
// are saved around each call (docs/benchmarks.md).
#if defined(__GNUC__)
#define LSTMFAST_FLATTEN __attribute__((flatten))
#else
#define LSTMFAST_FLATTEN
#endif

// Every unit is computed by the same packet functions wherever it lies, so the results do
// not depend on w or on where a row starts. A row of w ≥ PS units that is not whole packets
// ends with a packet that overlaps the one before it: it is loaded and computed first, while
// z and c_{t−1} still hold its inputs, and stored last, rewriting the shared units with the
// same values. A row shorter than one packet goes through a zero-padded copy.
template <bool KeepGates, typename Sig, typename Act>
LSTMFAST_FLATTEN inline void cell_row(const Sig& sig, const Act& act, float* z, const float* c_prev, float* c, float* h,
                                      Index w) {
  constexpr Index PS = Eigen::internal::packet_traits<float>::size;
  if (w < PS) {
    alignas(64) float zt[kNumGates * PS] = {}, ct[PS] = {}, ht[PS];
    for (Index q = 0; q < kNumGates; ++q) std::copy(z + q * w, z + (q + 1) * w, zt + q * PS);
    std::copy(c_prev, c_prev + w, ct);
    store_cell_packet<KeepGates>(cell_packet(sig, act, zt, PS, ct, 0), zt, PS, ct, ht, 0);
    for (Index q = 0; q < kNumGates; ++q) std::copy(zt + q * PS, zt + q * PS + w, z + q * w);
    std::copy(ct, ct + w, c);
    std::copy(ht, ht + w, h);
    return;
  }
  const Index whole = w / PS * PS;
  CellPacket last{};
  if (whole < w) last = cell_packet(sig, act, z, w, c_prev, w - PS);
  for (Index j = 0; j < whole; j += PS)
    store_cell_packet<KeepGates>(cell_packet(sig, act, z, w, c_prev, j), z, w, c, h, j);
  if (whole < w) store_cell_packet<KeepGates>(last, z, w, c, h, w - PS);
}

// Whether the cell leaves the gates in z (a training forward, whose backward reads them) or
// may leave anything there (inference; float skips the stores).
enum class Gates : bool { Discard = false, Keep = true };

template <typename S>
inline void lstm_cell(Activation phi, RecurrentActivation sigma, Gates gates, S* z, const S* c_prev, S* c, S* h,
                      Index w) {
  if constexpr (std::is_same_v<S, float>) {
    activations::with_cell_op(sigma, [&](const auto& sig) {
      activations::with_cell_op(phi, [&](const auto& act) {
        if (gates == Gates::Keep) cell_row<true>(sig, act, z, c_prev, c, h, w);
        else cell_row<false>(sig, act, z, c_prev, c, h, w);
      });
    });
  } else {
    ArrMap<S> i(z, w), f(z + w, w), g(z + 2 * w, w), o(z + 3 * w, w);
    activations::activate(sigma, i, i);  // i = σ(z_i)
    activations::activate(sigma, f, f);  // f = σ(z_f)
    activations::activate(phi, g, g);    // g = φ(z_c)
    activations::activate(sigma, o, o);  // o = σ(z_o)
    ArrMap<S> c_t(c, w), h_t(h, w);
    c_t = f * CArrMap<S>(c_prev, w) + i * g;  // c_t = f ⊙ c_{t−1} + i ⊙ g
    activations::activate(phi, h_t, c_t);     // h_t = o ⊙ φ(c_t)
    h_t *= o;
  }
}

// The cell's backward over w units of one sample at one step. From dh_t (d_h) and the carry
// dc_t from step t+1 (d_c, replaced by the carry dc_{t−1}), with the step's gates [i|f|g|o]
// (gate), c_{t−1} and c_t, it writes dz = [dz_i | dz_f | dz_g | dz_o]:
//   dz_o = dh_t ⊙ φ(c_t) ⊙ σ'(z_o)        through h_t = o ⊙ φ(c_t)
//   dc_t += dh_t ⊙ o ⊙ φ'(c_t)             the same, plus the carry from t+1 (already in d_c)
//   dz_i = dc_t ⊙ g ⊙ σ'(z_i)              through c_t = f ⊙ c_{t−1} + i ⊙ g
//   dz_g = dc_t ⊙ i ⊙ φ'(z_c)
//   dz_f = dc_t ⊙ c_{t−1} ⊙ σ'(z_f)
//   dc_{t−1} = dc_t ⊙ f                    the carry to step t−1
// float: one pass, a packet of units at a time (cell_backward_row); double: Eigen's arrays.
struct CellGradPacket {
  FloatPacket dz_i, dz_f, dz_g, dz_o, dc;
};

// The backward of units [j, j + PS) (act: φ; sig_d, act_d: d ⊙ σ'(z) and d ⊙ φ'(z) through
// the activation's output).
template <typename Act, typename SigD, typename ActD>
EIGEN_ALWAYS_INLINE CellGradPacket cell_grad_packet(const Act& act, const SigD& sig_d, const ActD& act_d,
                                                    const float* gate, Index w, const float* c_prev,
                                                    const float* c_t, const float* d_h, const float* d_c, Index j) {
  using namespace Eigen::internal;
  const FloatPacket i = ploadu<FloatPacket>(gate + j), f = ploadu<FloatPacket>(gate + w + j);
  const FloatPacket g = ploadu<FloatPacket>(gate + 2 * w + j), o = ploadu<FloatPacket>(gate + 3 * w + j);
  const FloatPacket dh = ploadu<FloatPacket>(d_h + j);
  const FloatPacket phi_c = act(ploadu<FloatPacket>(c_t + j));               // φ(c_t)
  CellGradPacket r;
  r.dz_o = sig_d(pmul(dh, phi_c), o);                                          // dh_t ⊙ φ(c_t) ⊙ σ'(z_o)
  const FloatPacket dc = padd(ploadu<FloatPacket>(d_c + j), act_d(pmul(dh, o), phi_c));  // dc_t
  r.dz_i = sig_d(pmul(dc, g), i);                                              // dc_t ⊙ g ⊙ σ'(z_i)
  r.dz_g = act_d(pmul(dc, i), g);                                              // dc_t ⊙ i ⊙ φ'(z_c)
  r.dz_f = sig_d(pmul(dc, ploadu<FloatPacket>(c_prev + j)), f);                // dc_t ⊙ c_{t−1} ⊙ σ'(z_f)
  r.dc = pmul(dc, f);                                                          // dc_{t−1} = dc_t ⊙ f
  return r;
}

EIGEN_ALWAYS_INLINE void store_cell_grad_packet(const CellGradPacket& r, float* dz, Index w, float* d_c, Index j) {
  using namespace Eigen::internal;
  pstoreu(dz + j, r.dz_i);
  pstoreu(dz + w + j, r.dz_f);
  pstoreu(dz + 2 * w + j, r.dz_g);
  pstoreu(dz + 3 * w + j, r.dz_o);
  pstoreu(d_c + j, r.dc);
}

// As cell_row: a row that is not whole packets ends in an overlapping packet, loaded and
// computed before any store (d_c is read and written in place) and stored last; a row
// shorter than one packet goes through zero-padded copies.
template <typename Act, typename SigD, typename ActD>
LSTMFAST_FLATTEN inline void cell_backward_row(const Act& act, const SigD& sig_d, const ActD& act_d,
                                               const float* gate, const float* c_prev, const float* c_t,
                                               const float* d_h, float* d_c, float* dz, Index w) {
  constexpr Index PS = Eigen::internal::packet_traits<float>::size;
  if (w < PS) {
    alignas(64) float gt[kNumGates * PS] = {}, cp[PS] = {}, ct[PS] = {}, dh[PS] = {}, dc[PS] = {};
    alignas(64) float dzt[kNumGates * PS];
    for (Index q = 0; q < kNumGates; ++q) std::copy(gate + q * w, gate + (q + 1) * w, gt + q * PS);
    std::copy(c_prev, c_prev + w, cp);
    std::copy(c_t, c_t + w, ct);
    std::copy(d_h, d_h + w, dh);
    std::copy(d_c, d_c + w, dc);
    store_cell_grad_packet(cell_grad_packet(act, sig_d, act_d, gt, PS, cp, ct, dh, dc, 0), dzt, PS, dc, 0);
    for (Index q = 0; q < kNumGates; ++q) std::copy(dzt + q * PS, dzt + q * PS + w, dz + q * w);
    std::copy(dc, dc + w, d_c);
    return;
  }
  const Index whole = w / PS * PS;
  CellGradPacket last{};
  if (whole < w) last = cell_grad_packet(act, sig_d, act_d, gate, w, c_prev, c_t, d_h, d_c, w - PS);
  for (Index j = 0; j < whole; j += PS)
    store_cell_grad_packet(cell_grad_packet(act, sig_d, act_d, gate, w, c_prev, c_t, d_h, d_c, j), dz, w, d_c, j);
  if (whole < w) store_cell_grad_packet(last, dz, w, d_c, w - PS);
}

template <typename S>
inline void lstm_cell_backward(Activation phi, RecurrentActivation sigma, const S* gate, const S* c_prev,
                               const S* c_t, const S* d_h, S* d_c, S* dz, Index w, S* work) {
  if constexpr (std::is_same_v<S, float>) {
    activations::with_cell_op(phi, [&](const auto& act) {
      activations::with_packet_derivative(sigma, [&](const auto& sig_d) {
        activations::with_packet_derivative(phi, [&](const auto& act_d) {
          cell_backward_row(act, sig_d, act_d, gate, c_prev, c_t, d_h, d_c, dz, w);
        });
      });
    });
  } else {
    CArrMap<S> i(gate, w), f(gate + w, w), g(gate + 2 * w, w), o(gate + 3 * w, w), dh(d_h, w);
    ArrMap<S> dc(d_c, w), dz_i(dz, w), dz_f(dz + w, w), dz_g(dz + 2 * w, w), dz_o(dz + 3 * w, w);
    ArrMap<S> phi_c(work, w), dc_h(work + w, w);             // (2w values of scratch)
    activations::activate(phi, phi_c, CArrMap<S>(c_t, w));  // φ(c_t)
    dz_o = dh * phi_c;                                       // dz_o = dh_t ⊙ φ(c_t) ⊙ σ'(z_o)
    mul_derivative(sigma, dz_o, o);
    dc_h = dh * o;                                           // dc_t += dh_t ⊙ o ⊙ φ'(c_t)
    mul_derivative(phi, dc_h, phi_c);
    dc += dc_h;
    dz_i = dc * g;                                           // dz_i = dc_t ⊙ g ⊙ σ'(z_i)
    mul_derivative(sigma, dz_i, i);
    dz_g = dc * i;                                           // dz_g = dc_t ⊙ i ⊙ φ'(z_c)
    mul_derivative(phi, dz_g, g);
    dz_f = dc * CArrMap<S>(c_prev, w);                       // dz_f = dc_t ⊙ c_{t−1} ⊙ σ'(z_f)
    mul_derivative(sigma, dz_f, f);
    dc *= f;                                                 // dc_{t−1} = dc_t ⊙ f
  }
}

// Where the forward's rows lie. A training forward keeps every step time-major in its cache;
// an inference forward may read Z in the caller's (B, T) order of x and write h_s straight
// into its (B, T, H) output rows, keeping two steps of c.
template <typename S>
struct ForwardRows {
  Index B = 0, H = 0, T = 0;
  S* z = nullptr;             // Z of step s, sample b: z + s'·z_step + b·z_ld
  Index z_step = 0, z_ld = 0;  // (s' = T−1−s when z_reversed, else s)
  bool z_reversed = false;
  S* h_init = nullptr;        // h_{−1} (B, H)
  S* h = nullptr;             // h_s of sample b: h + s·h_step + b·h_ld
  Index h_step = 0, h_ld = 0;
  S* c = nullptr;             // c_{s−1} (B, H): c + (s mod c_slots)·B·H
  Index c_slots = 0;

  S* z_rows(Index s) const { return z + (z_reversed ? T - 1 - s : s) * z_step; }
  S* h_rows(Index s) const { return h + s * h_step; }                       // h_s, h_ld apart
  const S* h_prev_rows(Index s) const { return s == 0 ? h_init : h_rows(s - 1); }
  Index h_prev_ld(Index s) const { return s == 0 ? H : h_ld; }
  S* c_rows(Index s) const { return c + (s % c_slots) * B * H; }            // c_{s−1}, H apart
};

}  // namespace

// Wᵀ for the backward's dX = dZ·Wᵀ, packed from Keras's layout (D, 4H) as the forward packs
// it: the tile width of a (Tx·B)-row product, rows in tile order.
template <typename S>
void pack_input_transposed(LSTMCache<S>& k, const S* W) {
  const GateTiling& tl = k.tiling;
  const Index B = k.cfg.B, D = k.cfg.D, G = kNumGates * k.cfg.H, Tx = k.cfg.constant_input ? 1 : k.cfg.T;
  const std::vector<Index> keras_cols = tl.identity() ? std::vector<Index>() : tl.keras_columns();
  k.WT_panels = pack_input_weights_transposed(D, G, PackedGemm<S>::tile_cols(Tx * B, D), W,
                                              keras_cols.empty() ? nullptr : keras_cols.data());
}

// =======================================================================================
// Forward
// =======================================================================================
// x (B, T, D) or (B, D) with constant_input; W (D, 4H), U (H, 4H), b (4H);
// outputs (B, T, H) or (B, H); h_T, c_T (B, H). With a cache, keeps what backward needs.
template <typename S>
void lstm_forward(const LSTMConfig& cfg, const LSTMInputs<S>& in, S* outputs, S* h_T, S* c_T,
                  LSTMCache<S>* cache) {
  using PG = PackedGemm<S>;
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H, G = kNumGates * H;
  const GateTiling tl = GateTiling::choose(B, H);
  LSTMCache<S> scratch;
  LSTMCache<S>& k = cache ? *cache : scratch;
  k.cfg = cfg;
  k.tiling = tl;
  k.has_bias = in.bias != nullptr;
  k.has_mask = in.mask != nullptr;
  k.zero_h0 = in.h0 == nullptr;

  // The weights are packed for the products straight from the caller's matrices, through a
  // map from tile order to Keras's columns (none with one unit tile, where the orders agree).
  const S* W = in.kernel;
  const S* U = in.recurrent_kernel;
  const std::vector<Index> keras_cols = tl.identity() ? std::vector<Index>() : tl.keras_columns();
  const Index* colmap = keras_cols.empty() ? nullptr : keras_cols.data();
  const bool constant = cfg.constant_input;
  const Index Tx = constant ? 1 : T;
  if (cache) {  // Uᵀ and Wᵀ for the backward, while the weights are at hand
    k.UT_panels = pack_recurrent_transposed(tl, U, k.UT_offsets, colmap);
    if (in.input_gradient) pack_input_transposed(k, W);
  }
  // W, U and b in tile order: packed here, or once before for many calls (inference only;
  // the training forward packs Uᵀ and Wᵀ above and keeps nothing packed of W and U).
  const Index cols = PG::tile_cols(Tx * B, G);
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
  const bool one_hot = in.ids != nullptr;
  const bool x_direct = !cache && !constant && !in.input_dropout && !one_hot;
  k.ids.clear();
  if (one_hot) {  // the ids in processing order, (T, B), for the backward's dW
    k.ids.resize(T * B);
    for (Index s = 0; s < T; ++s)
      for (Index b = 0; b < B; ++b) k.ids[s * B + b] = in.ids[b * T + time_index(cfg, s)];
  } else if (!x_direct) {
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
  // An inference forward of a narrow input projects each step inside the loop instead, tile
  // by tile, into a buffer of one tile that stays in cache (project_by_step): for such an x
  // the product is cheap, and writing Z for all T·B rows and reading it back at every step
  // would be much of its cost. Its sums run k after k either way, so the bits are the same.
  const bool step_projection = x_direct && project_by_step(tl, D);
  if (!step_projection) k.gates.reset(T * B * G);
  Buffer<S> z0(constant ? B * G : 0);
  // Weights packed here are tested for NaN and ±inf on the way when the caller asks.
  bool finite = true;
  bool* const check = in.check_weights ? &finite : nullptr;
  const Buffer<S> W_here = pre || one_hot ? Buffer<S>() : pack_input_weights(D, G, cols, W, colmap, check);
  if (!finite) throw NonFiniteWeights("kernel");
  const S* W_panels = pre ? pre->W.data() : W_here.data();
  if (one_hot) {
    // A one-hot x_t picks one row of W: z = x_t·W + b = W[id, :] + b, written by the time
    // loop for each step's tile just before its recurrent product adds to it.
    if (check && !all_finite(W, D * G)) throw NonFiniteWeights("kernel");
  } else if (!step_projection) {
    const auto X = MatrixView<const S>::row_major(x_direct ? in.x : k.x.data(), Tx * B, D, D);
    const auto Z = MatrixView<S>::row_major(constant ? z0.data() : k.gates.data(), Tx * B, G, G);
    // (k after k in every row block: a row's z does not depend on the rows beside it, which
    // LSTMStream relies on)
    PG::run_parallel(X, W_panels, cols, Z, Accumulate::No, MatrixView<const S>::repeated_row(bias, Tx * B, G),
                     Sums::Sequential);
  }

  // States: h_{s−1} and c_{s−1} for every step (h[0] = h0, c[0] = c0), which the backward
  // reads; the recurrent product reads h_{s−1} ⊙ m_h, double-buffered so one step's readers
  // never see the next step's writers. A forward without a cache or a mask writes h_s straight
  // into its output rows, which the next step reads (T·H apart), and keeps two rows of c per
  // sample.
  const bool h_direct = !cache && !k.has_mask && cfg.return_sequences;
  const bool outputs_in_loop = !h_direct && cfg.return_sequences;  // else h_direct writes them in place
  k.h.reset((h_direct ? 1 : T + 1) * B * H);
  k.c.reset((h_direct ? 2 : T + 1) * B * H);
  ForwardRows<S> rows;
  rows.B = B, rows.H = H, rows.T = T;
  rows.z = k.gates.data();
  rows.z_step = x_direct ? G : B * G;  // Z[b, t] (the caller's order of x) or Z[s, b]
  rows.z_ld = x_direct ? T * G : G;
  rows.z_reversed = x_direct && cfg.go_backwards;
  rows.h_init = k.h.data();
  rows.h = h_direct ? outputs : k.h.data() + B * H;
  rows.h_step = h_direct ? H : B * H;
  rows.h_ld = h_direct ? T * H : H;
  rows.c = k.c.data();
  rows.c_slots = h_direct ? 2 : T + 1;
  if (in.h0) std::copy(in.h0, in.h0 + B * H, k.h.data());
  else std::fill(k.h.data(), k.h.data() + B * H, S(0));
  if (in.c0) std::copy(in.c0, in.c0 + B * H, k.c.data());
  else std::fill(k.c.data(), k.c.data() + B * H, S(0));
  const bool drop_h = !k.m_h.empty();
  std::vector<S> hd(drop_h ? 2 * B * H : 0);  // h_{s−1} ⊙ m_h, at (s mod 2)·B·H
  if (drop_h)
    for (Index j = 0; j < B * H; ++j) hd[j] = k.h[j] * k.m_h[j];

  std::vector<Index> offsets_here;
  const Buffer<S> U_here = pre ? Buffer<S>() : pack_recurrent(tl, U, offsets_here, colmap, check);
  if (!finite) throw NonFiniteWeights("recurrent_kernel");
  const S* U_panels = pre ? pre->U.data() : U_here.data();
  const std::vector<Index>& offsets = pre ? pre->U_offsets : offsets_here;

  const Activation phi = cfg.activation;
  const RecurrentActivation sigma = cfg.recurrent_activation;
  const Gates gates = cache ? Gates::Keep : Gates::Discard;
  // The step projection's tile buffers, one per thread: a tile's rows × its 4w gate columns.
  std::vector<Buffer<S>> z_tiles;
  if (step_projection)
    for (Index n = std::min<Index>(max_threads(), tl.n_batch_tiles * tl.n_unit_tiles); n > 0; --n)
      z_tiles.emplace_back(tl.batch_tile * kNumGates * tl.unit_tile);
  time_loop(tl, T, false, [&](Index s, Index tile) {
    const GateTiling::Tile t = tl.tile(tile);
    const Index w = t.w, w4 = kNumGates * t.w;
    const S* h_prev = drop_h ? hd.data() + (s % 2) * B * H : rows.h_prev_rows(s);
    const Index h_prev_ld = drop_h ? H : rows.h_prev_ld(s);

    // z_t = x_t·W + b + (h_{t−1}⊙m_h)·U for this tile's rows and its four gate blocks: the
    // product adds to the projection in Z (constant input: z_t = z0 + (h_{t−1}⊙m_h)·U), or
    // to the step's own projection. Without an initial state h_{−1} = 0 and the first step's
    // product adds nothing. Row b of the tile's z is at z_rows + (b − t.b0)·z_ld.
    S* z_rows;
    Index z_ld;
    if (one_hot) {  // z_t = W[id, :] + b over the tile's columns (in tile order); b for a step of zeros
      z_rows = rows.z_rows(s) + t.b0 * rows.z_ld + t.c0;
      z_ld = rows.z_ld;
      for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
        S* z = z_rows + (b - t.b0) * z_ld;
        const Index id = k.ids[s * B + b];
        const S* bias_t = bias + t.c0;
        if (id < 0) {
          std::copy(bias_t, bias_t + w4, z);
        } else if (colmap) {
          const S* w_row = W + id * G;
          for (Index j = 0; j < w4; ++j) z[j] = w_row[colmap[t.c0 + j]] + bias_t[j];
        } else {
          const S* w_row = W + id * G + t.c0;
          for (Index j = 0; j < w4; ++j) z[j] = w_row[j] + bias_t[j];
        }
      }
    } else if (!step_projection) {
      z_rows = rows.z_rows(s) + t.b0 * rows.z_ld + t.c0;
      z_ld = rows.z_ld;
    } else {  // z_t = x_t·W + b
      z_rows = z_tiles[omp_get_thread_num()].data();
      z_ld = w4;
      const auto x_t = MatrixView<const S>::row_major(in.x + (t.b0 * T + time_index(cfg, s)) * D, t.bn, D, T * D);
      // (D ≤ kKc: the packed W is one chunk, and the tile's columns start at column t.c0, a
      // whole number of panels in: unit tiles are multiples of 8 units)
      eigen_assert(t.c0 % PG::NR == 0);
      PG::run(x_t, W_panels + t.c0 * D, MatrixView<S>::row_major(z_rows, t.bn, w4, w4), Accumulate::No,
              MatrixView<const S>::repeated_row(bias + t.c0, t.bn, w4), Walk::Forwards, Sums::Sequential);
    }
    const auto z_t = MatrixView<S>::row_major(z_rows, t.bn, w4, z_ld);
    if (s > 0 || in.h0) {
      const auto h = MatrixView<const S>::row_major(h_prev + t.b0 * h_prev_ld, t.bn, H, h_prev_ld);
      const S* U_tile = U_panels + offsets[t.ut];
      if (constant) {
        const auto z0_t = MatrixView<const S>::row_major(z0.data() + t.b0 * G + t.c0, t.bn, w4, G);
        PG::run(h, U_tile, z_t, Accumulate::No, z0_t, step_walk(s));
      } else {
        PG::run(h, U_tile, z_t, Accumulate::Yes, {}, step_walk(s));
      }
    } else if (constant) {
      for (Index b = t.b0; b < t.b0 + t.bn; ++b) std::copy_n(z0.data() + b * G + t.c0, w4, z_rows + (b - t.b0) * z_ld);
    }

    const S* c_prev = rows.c_rows(s);
    S* c_next = rows.c_rows(s + 1);
    S* h_next = rows.h_rows(s);
    for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
      const S* cp = c_prev + b * H + t.u0;
      S* cn = c_next + b * H + t.u0;
      S* hn = h_next + b * rows.h_ld + t.u0;
      if (k.has_mask && !k.mask[s * B + b]) {  // masked: h_t = h_{t−1}, c_t = c_{t−1}
        std::memcpy(cn, cp, sizeof(S) * w);
        std::memcpy(hn, rows.h_prev_rows(s) + b * rows.h_prev_ld(s) + t.u0, sizeof(S) * w);
      } else {
        lstm_cell(phi, sigma, gates, z_rows + (b - t.b0) * z_ld, cp, cn, hn, w);
      }
      if (drop_h) {
        S* hd_next = hd.data() + ((s + 1) % 2) * B * H + b * H + t.u0;
        ArrMap<S>(hd_next, w) = CArrMap<S>(hn, w) * CArrMap<S>(k.m_h.data() + b * H + t.u0, w);
      }
      if (outputs_in_loop) {  // the step's output row, in processing order, while h_t is in cache
        S* out = outputs + (b * T + s) * H + t.u0;
        if (output_is_zero(k, s, b)) std::fill_n(out, w, S(0));
        else std::copy_n(hn, w, out);
      }
    }
  });

  // Outputs in processing order, as Keras returns them (a sequence's rows written by the loop).
  auto output_row = [&](Index s, Index b, S* dst) {
    if (output_is_zero(k, s, b)) std::fill(dst, dst + H, S(0));
    else std::memcpy(dst, k.h.data() + ((s + 1) * B + b) * H, sizeof(S) * H);
  };
  if (h_direct) {  // already in place; h_T is each sample's last output row
    for (Index b = 0; b < B; ++b) std::memcpy(h_T + b * H, rows.h_rows(T - 1) + b * rows.h_ld, sizeof(S) * H);
  } else {
    if (!cfg.return_sequences)
      for (Index b = 0; b < B; ++b) output_row(T - 1, b, outputs + b * H);
    std::memcpy(h_T, k.h.data() + T * B * H, sizeof(S) * B * H);
  }
  std::memcpy(c_T, rows.c_rows(T), sizeof(S) * B * H);
}

// =======================================================================================
// Backward through time
// =======================================================================================
// From the cache of one training forward: d_outputs like its outputs or nullptr; d_hT, d_cT
// (B, H) or nullptr. Writes dx (B, T, D) or (B, D), dW (D, 4H), dU (H, 4H), db (4H),
// dh0 and dc0 (B, H).
template <typename S>
void lstm_backward(const LSTMCache<S>& k, const S* d_outputs, const S* d_hT, const S* d_cT,
                   const LSTMGrads<S>& grads) {
  using PG = PackedGemm<S>;
  using View = MatrixView<const S>;
  const LSTMConfig& cfg = k.cfg;
  const GateTiling& tl = k.tiling;
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H, G = kNumGates * H;
  const Activation phi = cfg.activation;
  const RecurrentActivation sigma = cfg.recurrent_activation;
  const bool drop_h = !k.m_h.empty();
  auto real_step = [&](Index s, Index b) { return !k.has_mask || k.mask[s * B + b]; };
  const Buffer<S>& UT_panels = k.UT_panels;
  const std::vector<Index>& offsets = k.UT_offsets;

  // dL/dz_t, tile-packed, every step: rows ldz apart, a packet more than 4H where rows 4H
  // apart would share L1 sets, so that the recurrence's product reads a block of rows where
  // they lie (PackedGemm::run).
  const Index ldz = PG::rows_share_l1_sets(G) ? G + PG::PS : G;
  std::vector<S> dh(B * H), dc(B * H, S(0));  // dL/dh_t and dL/dc_t, carried backwards
  std::vector<S> pass(k.has_mask ? B * H : 0, S(0));  // dh_t passed through masked steps
  if (d_cT) std::copy(d_cT, d_cT + B * H, dc.begin());

  // dh_s = dz_{s+1}·Uᵀ (⊙ m_h) over one tile's units and rows: (bn, 4H)·(4H, w), into dst
  // (rows H apart), plus what a masked step passed on. Uᵀ is walked backwards at odd steps.
  auto dh_through_recurrence = [&](const S* dz_next, const GateTiling::Tile& t, S* dst, Walk walk) {
    PG::run(View::row_major(dz_next + t.b0 * ldz, t.bn, G, ldz), UT_panels.data() + offsets[t.ut],
            MatrixView<S>::row_major(dst + t.b0 * H + t.u0, t.bn, t.w, H), Accumulate::No, {}, walk);
    for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
      ArrMap<S> row(dst + b * H + t.u0, t.w);
      if (drop_h) row *= CArrMap<S>(k.m_h.data() + b * H + t.u0, t.w);
      if (k.has_mask) row += CArrMap<S>(pass.data() + b * H + t.u0, t.w);
    }
  };

  // db = Σ_s Σ_b dz_s[b]: each batch tile sums its own rows inside the loop, while they are
  // in cache (steps in processing order backwards, rows in order), into its own row here.
  std::vector<S> db_tiles(grads.dbias ? tl.n_batch_tiles * G : 0, S(0));
  // So does a one-hot input's dW = Xᵀ·dZ, which adds each row's dz_s,b into the row of its id,
  // dW[id, :] += dz_s,b, into the batch tile's own copy of dW (when the copies are small;
  // otherwise after the loop, below).
  const bool one_hot = !k.ids.empty();
  const bool dw_in_loop = one_hot && tl.n_batch_tiles * D * G * Index(sizeof(S)) <= kInLoopGradientBytes;
  Buffer<S> dW_tiles(dw_in_loop ? tl.n_batch_tiles * D * G : 0);  // each tile clears its part first
  // dZ is packed for the weight gradients' products (dU = H_prevᵀ·dZ, dW = Xᵀ·dZ) tile by
  // tile inside the loop too, when the packed columns are Keras's (one unit tile).
  // (Keras's column c of dZ is packed column colmap[c]; no map with one unit tile.)
  const std::vector<Index> tiled_cols = tl.identity() ? std::vector<Index>() : tl.tiled_columns();
  const Index* colmap = tiled_cols.empty() ? nullptr : tiled_cols.data();
  const bool pack_in_loop = colmap == nullptr;
  // dZ itself is read after the loop only by the products and sums that the loop did not do
  // (the packing without it, a constant input's Σ_s dz_s, a one-hot dW too large to keep per
  // tile, dX). Without those, two steps' rows are all it keeps: step s in slot s mod 2, read
  // by step s−1's recurrence (and by dh0 after step 0), which then stay in cache.
  const bool two_steps = pack_in_loop && !cfg.constant_input && (!one_hot || dw_in_loop) && !grads.dx;
  Buffer<S> dZ((two_steps ? std::min<Index>(T, 2) : T) * B * ldz);
  auto dz_rows = [&](Index s) { return dZ.data() + (two_steps ? s % 2 : s) * B * ldz; };  // step s's first row
  Buffer<S> dZ_panels(PG::packed_size(T * B, G));
  // dZ's panels serve dW (D rows) and dU (H rows): one tile width for both.
  const Index dz_cols = PG::tile_cols(std::min(D, H), G);
  // dL/dh_s of this tile before step s is undone: the output gradient of step s, plus the
  // carry from step s+1 through z_{s+1} = … + (h_s⊙m_h)·U, plus what a masked step passed on.
  auto gather_dh = [&](Index s, const GateTiling::Tile& t) {
    if (s == T - 1) {
      MapR<S> dh_t(dh.data() + t.b0 * H + t.u0, t.bn, t.w, Eigen::OuterStride<>(H));
      if (d_hT) dh_t = CMapR<S>(d_hT + t.b0 * H + t.u0, t.bn, t.w, Eigen::OuterStride<>(H));
      else dh_t.setZero();
    } else {
      dh_through_recurrence(dz_rows(s + 1), t, dh.data(), step_walk(s));
    }
    if (!d_outputs) return;
    for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
      if (output_is_zero(k, s, b)) continue;  // a constant zero output
      ArrMap<S> dh_b(dh.data() + b * H + t.u0, t.w);
      if (cfg.return_sequences) dh_b += CArrMap<S>(d_outputs + (b * T + s) * H + t.u0, t.w);
      else if (s == T - 1) dh_b += CArrMap<S>(d_outputs + b * H + t.u0, t.w);
    }
  };

  // (double's cell backward works in 2w values of its thread's scratch; float's in registers)
  const Index ntiles = tl.n_batch_tiles * tl.n_unit_tiles;
  const Index scratch_size = std::is_same_v<S, float> ? 0 : 2 * tl.unit_tile;
  std::vector<std::vector<S>> scratch(std::min<Index>(max_threads(), ntiles), std::vector<S>(scratch_size));
  time_loop(tl, T, true, [&](Index s, Index tile) {
    const GateTiling::Tile t = tl.tile(tile);
    const Index w = t.w, w4 = kNumGates * t.w;
    if (dw_in_loop && s == T - 1)
      for (Index r = 0; r < D; ++r) std::fill_n(dW_tiles.data() + (t.bt * D + r) * G + t.c0, w4, S(0));
    gather_dh(s, t);
    S* work = scratch[omp_get_thread_num()].data();
    for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
      S* dz = dz_rows(s) + b * ldz + t.c0;
      S* d_h = dh.data() + b * H + t.u0;
      if (!real_step(s, b)) {  // h_t = h_{t−1}, c_t = c_{t−1}: both gradients pass through
        std::fill(dz, dz + w4, S(0));
        std::copy_n(d_h, w, pass.data() + b * H + t.u0);
        continue;
      }
      if (k.has_mask) std::fill_n(pass.data() + b * H + t.u0, w, S(0));
      lstm_cell_backward(phi, sigma, k.gates.data() + (s * B + b) * G + t.c0, k.c.data() + (s * B + b) * H + t.u0,
                         k.c.data() + ((s + 1) * B + b) * H + t.u0, d_h, dc.data() + b * H + t.u0, dz, w, work);
      if (grads.dbias) ArrMap<S>(db_tiles.data() + t.bt * G + t.c0, w4) += CArrMap<S>(dz, w4);
      const Index id = dw_in_loop ? k.ids[s * B + b] : -1;
      if (id >= 0) ArrMap<S>(dW_tiles.data() + (t.bt * D + id) * G + t.c0, w4) += CArrMap<S>(dz, w4);  // dW[id, :] += dz_s,b
    }
    if (pack_in_loop)
      PG::pack_rows(dz_rows(s) + t.b0 * ldz, ldz, s * B + t.b0, t.bn, T * B, G, dz_cols, dZ_panels.data());
  });

  // Gradients of the initial state, when asked for: dh0 = dz_0·Uᵀ ⊙ m_h (+ pass), dc0 = the
  // carried dc.
  if (grads.dh0) {
    parallel_for_tiles(tl.n_batch_tiles * tl.n_unit_tiles, [&](Index tile) {
      dh_through_recurrence(dz_rows(0), tl.tile(tile), grads.dh0, Walk::Forwards);
    });
  }
  if (grads.dc0) std::copy(dc.begin(), dc.end(), grads.dc0);

  // Weight gradients after the loop, as large GEMMs over all T·B rows, straight into the
  // caller's arrays: dZ's columns are packed in Keras's order (through a map from tile order).
  if (!pack_in_loop)
    PG::pack_parallel(View::row_major(dZ.data(), T * B, G, ldz), dz_cols, dZ_panels.data(), Reorder{colmap});
  // A constant input meets the sum of the steps' gradients: Σ_s dz_s (B, 4H), summed in
  // step order for every element.
  const bool constant = cfg.constant_input;
  const Index Tx = constant ? 1 : T;
  Buffer<S> dZ_sum(constant ? B * G : 0), dZ_sum_panels(constant ? PG::packed_size(B, G) : 0);
  if (constant) {
    parallel_for_tiles(B, [&](Index b) {
      ArrMap<S> acc(dZ_sum.data() + b * G, G);
      acc = CArrMap<S>(dZ.data() + b * ldz, G);
      for (Index s = 1; s < T; ++s) acc += CArrMap<S>(dZ.data() + (s * B + b) * ldz, G);
    });
    PG::pack_parallel(View::row_major(dZ_sum.data(), B, G, G), dz_cols, dZ_sum_panels.data(), Reorder{colmap});
  }
  if (dw_in_loop) {
    // The batch tiles' copies of dW, added in tile order (to Keras's column order).
    parallel_for_tiles(D, [&](Index r) {
      S* dst = grads.dkernel + r * G;
      for (Index c = 0; c < G; ++c) {
        const Index src = r * G + (colmap ? colmap[c] : c);
        S acc = dW_tiles[src];
        for (Index bt = 1; bt < tl.n_batch_tiles; ++bt) acc += dW_tiles[bt * D * G + src];  // dW = Σ_bt dW_bt
        dst[c] = acc;
      }
    });
  } else if (one_hot) {
    // One-hot input: dW = Xᵀ·dZ adds each step's dz_s,b into the row of its id, dW[id, :] +=
    // dz_s,b. Threads own fixed blocks of columns and add the rows in step order, so the sums
    // do not depend on the thread count.
    std::fill(grads.dkernel, grads.dkernel + D * G, S(0));
    constexpr Index kBlock = 64;
    parallel_for_tiles((G + kBlock - 1) / kBlock, [&](Index blk) {
      const Index c0 = blk * kBlock, c1 = std::min(G, c0 + kBlock);
      for (Index r = 0; r < T * B; ++r) {
        const Index id = k.ids[r];
        if (id < 0) continue;
        S* dst = grads.dkernel + id * G;
        const S* src = dZ.data() + r * ldz;
        for (Index c = c0; c < c1; ++c) dst[c] += src[colmap ? colmap[c] : c];  // to Keras's order
      }
    });
  } else {
    // dW = Xᵀ·dZ: (D, T·B)·(T·B, 4H); constant input: xᵀ·Σ_s dz_s, (D, B)·(B, 4H)
    PG::run_parallel(View::transposed(k.x.data(), D, Tx * B, D), constant ? dZ_sum_panels.data() : dZ_panels.data(),
                     dz_cols, MatrixView<S>::row_major(grads.dkernel, D, G, G), Accumulate::No);
  }
  // dU = (H_prev⊙m_h)ᵀ·dZ: (H, T·B)·(T·B, 4H); H_prev = h_{−1} … h_{T−2}. Without an
  // initial state h_{−1} = 0, and step 0's B rows add nothing to it: the product starts at
  // row B of H_prev and of the packed dZ (the same sums, in the same chunks).
  const Index skip = k.zero_h0 && T > 1 ? B : 0;
  const S* h_prev = k.h.data();
  Buffer<S> hd;
  if (drop_h) {
    hd.reset(T * B * H);
    parallel_for_tiles(T, [&](Index s) {
      for (Index j = 0; j < B * H; ++j) hd[s * B * H + j] = k.h[s * B * H + j] * k.m_h[j];
    });
    h_prev = hd.data();
  }
  PG::run_parallel(View::transposed(h_prev + skip * H, H, T * B - skip, H), dZ_panels.data(), dz_cols,
                   MatrixView<S>::row_major(grads.drecurrent_kernel, H, G, G), Accumulate::No, {}, Sums::Partial, 0,
                   skip);
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
  PG::run_parallel(View::row_major(constant ? dZ_sum.data() : dZ.data(), Tx * B, G, constant ? G : ldz), k.WT_panels.data(),
                   PG::tile_cols(Tx * B, D), MatrixView<S>::row_major(dX.data(), Tx * B, D, D), Accumulate::No);
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

template <typename S>
bool one_hot_rows(const S* x, Index rows, Index D, std::vector<int32_t>& ids) {
  ids.assign(rows, -1);
  // Rows in fixed blocks on the kernels' threads. A row counts its ones and its values that
  // are neither 0 nor 1 in one branch-free (vectorised) pass, then finds its 1.
  constexpr Index kRows = 256;
  const Index nblocks = (rows + kRows - 1) / kRows;
  std::vector<char> ok(nblocks, 1);
  parallel_for_tiles(nblocks, [&](Index blk) {
    for (Index r = blk * kRows; r < std::min(rows, (blk + 1) * kRows); ++r) {
      const S* row = x + r * D;
      Index ones = 0, other = 0;
      for (Index d = 0; d < D; ++d) {
        ones += row[d] == S(1);
        other += row[d] != S(0) && row[d] != S(1);
      }
      if (other || ones > 1) {  // not 0/1 (NaN included), or a second 1
        ok[blk] = 0;
        return;
      }
      if (ones) ids[r] = static_cast<int32_t>(std::find(row, row + D, S(1)) - row);
    }
  });
  return all_set(ok);
}

// =======================================================================================
// One step, for streaming
// =======================================================================================
// The forward's arithmetic, one step per call: z = x_t·W + b in the projection's order (k after
// k), z += h_{t−1}·U per (batch × unit) tile of GateTiling::choose(B, H) with the walk of step
// s, then the cell per tile. The products of a step are all done before its cells, which write
// the h that they read.
template <typename S>
LSTMStream<S>::LSTMStream(const LSTMPackedWeights<S>& weights, Index B, Activation phi, RecurrentActivation sigma)
    : w_(weights), tl_(GateTiling::choose(B, weights.H)), cols_(PackedGemm<S>::tile_cols(B, kNumGates * weights.H)),
      panels_(weights.panels(tl_, cols_)), phi_(phi), sigma_(sigma), z_(B * kNumGates * weights.H),
      parallel_(step_worth_threads(tl_)) {}

template <typename S>
void LSTMStream<S>::step(const S* x, S* h, S* c, Index s, bool from_state) {
  using PG = PackedGemm<S>;
  using View = MatrixView<const S>;
  const Index B = tl_.B, D = w_.D, H = w_.H, G = kNumGates * H;
  const Index ntiles = tl_.n_batch_tiles * tl_.n_unit_tiles;
  const auto for_tiles = [&](Index n, auto&& f) {
    if (parallel_) {
      parallel_for_tiles(n, f);
    } else {
      DenormalGuard guard;
      for (Index k = 0; k < n; ++k) f(k);
    }
  };
  // z = x_t·W + b (columns in tile order), the column tiles of the packed W
  const Index ncol_tiles = (G + cols_ - 1) / cols_;
  for_tiles(ncol_tiles, [&](Index t) {
    const Index c0 = t * cols_, n = std::min(cols_, G - c0);
    PG::run(View::row_major(x, B, D, D), panels_.W.data() + c0 * D, MatrixView<S>::row_major(z_.data() + c0, B, n, G),
            Accumulate::No, View::repeated_row(panels_.bias.data() + c0, B, n), Walk::Forwards, Sums::Sequential);
  });
  // z_t += h_{t−1}·U, tile by tile (none at the first step from zeros, as in lstm_forward)
  if (s > 0 || from_state) {
    for_tiles(ntiles, [&](Index k) {
      const GateTiling::Tile t = tl_.tile(k);
      PG::run(View::row_major(h + t.b0 * H, t.bn, H, H), panels_.U.data() + panels_.U_offsets[t.ut],
              MatrixView<S>::row_major(z_.data() + t.b0 * G + t.c0, t.bn, kNumGates * t.w, G), Accumulate::Yes, {},
              step_walk(s));
    });
  }
  // gates, c_t and h_t, in place
  for_tiles(ntiles, [&](Index k) {
    const GateTiling::Tile t = tl_.tile(k);
    for (Index b = t.b0; b < t.b0 + t.bn; ++b) {
      S* c_b = c + b * H + t.u0;
      lstm_cell(phi_, sigma_, Gates::Discard, z_.data() + b * G + t.c0, c_b, c_b, h + b * H + t.u0, t.w);
    }
  });
}

#define LSTMFAST_INSTANTIATE(S)                                                                    \
  template class LSTMStream<S>;                                                                     \
  template bool one_hot_rows<S>(const S*, Index, Index, std::vector<int32_t>&);                     \
  template void lstm_forward<S>(const LSTMConfig&, const LSTMInputs<S>&, S*, S*, S*, LSTMCache<S>*); \
  template void pack_input_transposed<S>(LSTMCache<S>&, const S*);                                  \
  template void lstm_backward<S>(const LSTMCache<S>&, const S*, const S*, const S*,                 \
                                 const LSTMGrads<S>&);
LSTMFAST_INSTANTIATE(float)
LSTMFAST_INSTANTIATE(double)
#undef LSTMFAST_INSTANTIATE

LSTMFAST_NAMESPACE_END  // lstmfast
