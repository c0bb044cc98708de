// lstm.h — the LSTM layer, forward and backward through time.
//
// Dimensions: B batch, T time steps, D input features, H units, G = 4H gate columns.
// Weights in Keras's layout:  kernel W (D, 4H), recurrent_kernel U (H, 4H), bias b (4H),
// columns in gate order [i | f | c | o] (torch's [i | f | g | o] is the same order:
// W = weight_ihᵀ, U = weight_hhᵀ, b = bias_ih + bias_hh).
//
// One step, with σ the recurrent activation and φ the activation:
//   z_t = (x_t⊙m_x)·W + (h_{t−1}⊙m_h)·U + b           (m_x, m_h: dropout masks, or ones)
//   i = σ(z_i)   f = σ(z_f)   g = φ(z_c)   o = σ(z_o)
//   c_t = f⊙c_{t−1} + i⊙g
//   h_t = o⊙φ(c_t)
// A masked step (mask[b,t] = 0) carries the state through: h_t = h_{t−1}, c_t = c_{t−1},
// and outputs the previous step's output: zeros before the first real step (as Keras's
// TensorFlow and torch backends do), or always zeros with zero_output_for_mask.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "activations.h"
#include "buffer.h"
#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// Gate order, shared with Keras: column block g·H … (g+1)·H−1 of W, U and b.
constexpr int kGateI = 0, kGateF = 1, kGateC = 2, kGateO = 3, kNumGates = 4;

// φ is an Activation, σ a RecurrentActivation (activations.h).

struct LSTMConfig {
  Index B = 0, T = 0, D = 0, H = 0;
  Activation activation = Activation::Tanh;
  RecurrentActivation recurrent_activation = RecurrentActivation::Sigmoid;
  bool go_backwards = false;          // process t = T−1 … 0; outputs stay in processing order
  bool return_sequences = true;       // outputs (B,T,H), else (B,H)
  bool zero_output_for_mask = false;  // a masked step outputs zeros, not the previous output
  // x is (B, D), the same input at every step (a RepeatVector's output): its projection
  // x·W + b is computed once, not T times, and backward returns dx (B, D) = Σ_t ∂L/∂x_t
  // from Σ_t dz_t, which also gives dW = xᵀ·Σ_t dz_t.
  bool constant_input = false;
};

template <typename S>
class LSTMPackedWeights;

// Caller-owned inputs; optional ones are nullptr.
template <typename S>
struct LSTMInputs {
  const S* x = nullptr;                  // (B, T, D), or (B, D) with constant_input
  const S* kernel = nullptr;             // (D, 4H)
  const S* recurrent_kernel = nullptr;   // (H, 4H)
  const S* bias = nullptr;               // (4H) or nullptr
  const S* h0 = nullptr;                 // (B, H) or nullptr (zeros)
  const S* c0 = nullptr;                 // (B, H) or nullptr (zeros)
  const uint8_t* mask = nullptr;         // (B, T), 1 = real step, or nullptr
  const S* input_dropout = nullptr;      // m_x (B, D) or nullptr
  const S* recurrent_dropout = nullptr;  // m_h (B, H) or nullptr
  // x is one-hot (one_hot_rows): x[b, t, :] = e_{ids[b·T + t]}, or zeros where the id is −1.
  // The projection then picks rows of W instead of multiplying by x, and the backward adds
  // rows of dZ into dW; x must still be given (for the backward's dX nothing else is read).
  const int32_t* ids = nullptr;
  // The same kernel, recurrent_kernel and bias packed once for many calls (kernel,
  // recurrent_kernel and bias then point at its copy); an inference forward multiplies its
  // panels instead of packing the weights itself.
  const LSTMPackedWeights<S>* packed = nullptr;
  // Test kernel and recurrent_kernel for NaN and ±inf while packing them (which reads every
  // value anyway), throwing NonFiniteWeights; weights already packed are not tested again.
  bool check_weights = false;
  // With a cache: keep Wᵀ packed for the backward's dX = dZ·Wᵀ. False where no dX will be
  // asked for (a model's first layer, fed with data); pack_input_transposed() adds it later.
  bool input_gradient = true;
};

// What lstm_forward throws when check_weights finds NaN or ±inf in a weight matrix; what()
// names it: "kernel" or "recurrent_kernel".
struct NonFiniteWeights : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// How the H units are cut into tiles for the parallel time loop. The gate columns are
// stored tile by tile: tile k holds units [u0, u0+w) as [i | f | c | o] blocks of width w,
// so a thread computes all four gates of its units with one GEMM. Tiles depend only on
// (B, H), never on the thread count, which keeps results bitwise reproducible.
struct GateTiling {
  Index B = 0, H = 0, unit_tile = 0, n_unit_tiles = 0, batch_tile = 0, n_batch_tiles = 0;
  static GateTiling choose(Index B, Index H);
  Index u0(Index k) const { return k * unit_tile; }
  Index width(Index k) const { return std::min(unit_tile, H - u0(k)); }
  // One unit tile: tile order is Keras's gate order.
  bool identity() const { return n_unit_tiles == 1; }
  // Tile k of a step (k = batch tile · n_unit_tiles + unit tile): rows [b0, b0 + bn) and
  // units [u0, u0 + w) of unit tile ut, whose gates are packed columns [c0, c0 + 4w).
  struct Tile {
    Index bt, b0, bn, ut, u0, w, c0;
  };
  Tile tile(Index k) const {
    const Index bt = k / n_unit_tiles, b0 = bt * batch_tile, ut = k % n_unit_tiles;
    return {bt, b0, std::min(batch_tile, B - b0), ut, u0(ut), width(ut), kNumGates * u0(ut)};
  }
  // Packed column of unit j of gate g.
  Index column(int g, Index j) const {
    const Index k = j / unit_tile;
    return kNumGates * u0(k) + g * width(k) + (j - u0(k));
  }
  // For each packed column, its column g·H + j in Keras's order (packs the weights).
  std::vector<Index> keras_columns() const {
    std::vector<Index> map(kNumGates * H);
    for (int g = 0; g < kNumGates; ++g)
      for (Index j = 0; j < H; ++j) map[column(g, j)] = g * H + j;
    return map;
  }
  // The inverse: for each Keras column g·H + j, its packed column (puts gradients back).
  std::vector<Index> tiled_columns() const {
    std::vector<Index> map(kNumGates * H);
    for (int g = 0; g < kNumGates; ++g)
      for (Index j = 0; j < H; ++j) map[g * H + j] = column(g, j);
    return map;
  }
};

// An LSTM's weights copied and packed once, for many inference forwards: predict() runs one
// forward per batch on the same weights, and packing W and U (16 MB each at D = H = 1024,
// read from memory) is a noticeable part of a forward at large H (docs/benchmarks.md).
// ONNX Runtime likewise packs a model's weights when it loads it. Holds the weights as they were when packed, in Keras's layout,
// and, made on first use, the panels of every layout a forward has asked for: the tiling
// (batch tiles from B = 32 up, unit tiles below) and the input projection's column-tile
// width pick it, so a handful at most. Safe to share between threads.
template <typename S>
class LSTMPackedWeights {
 public:
  struct Panels {
    Index unit_tile = 0, cols = 0;  // the layout: GateTiling::unit_tile, the projection's tile width
    Buffer<S> W, U;                 // W (D × 4H) and U, per unit tile, packed for PackedGemm
    std::vector<Index> U_offsets;   // where each unit tile's U panels start
    std::vector<S> bias;            // b in tile order (zeros without a bias)
  };

  // kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H) or nullptr, copied.
  LSTMPackedWeights(Index D, Index H, const S* kernel, const S* recurrent_kernel, const S* bias)
      : D(D), H(H), has_bias(bias != nullptr), kernel(kernel, kernel + D * kNumGates * H),
        recurrent_kernel(recurrent_kernel, recurrent_kernel + H * kNumGates * H),
        bias(bias ? std::vector<S>(bias, bias + kNumGates * H) : std::vector<S>()) {}

  const Index D, H;
  const bool has_bias;
  const std::vector<S> kernel, recurrent_kernel, bias;  // the copy, in Keras's layout

  // The panels of the layout that tiling tl and column-tile width cols ask for.
  const Panels& panels(const GateTiling& tl, Index cols) const;

 private:
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Panels>> panels_;
};

// What backward needs, in the kernel's time-major, tile-packed layout.
template <typename S>
struct LSTMCache {
  LSTMConfig cfg;
  GateTiling tiling;
  bool has_bias = false, has_mask = false;
  bool zero_h0 = true;  // no initial state was given: h_{−1} = 0
  Buffer<S> x;        // (T, B, D)  x_s⊙m_x in processing order; (B, D) if constant_input
  std::vector<int32_t> ids;  // (T, B) instead of x when the input was one-hot, else empty
  Buffer<S> gates;    // (T, B, 4H) activated i, f, g, o, tile-packed
  Buffer<S> h, c;     // (T+1, B, H) h[s] = h_{s−1} (h[0] = h0); likewise c
  // Uᵀ per unit tile and Wᵀ, packed for the backward's products (dh = dz·Uᵀ, dX = dZ·Wᵀ)
  // straight from the caller's Keras-layout weights, rows in tile order (WT_panels empty when
  // the forward was told that no dX would be asked for).
  Buffer<S> UT_panels, WT_panels;
  std::vector<Index> UT_offsets;  // where each unit tile's Uᵀ panels start
  std::vector<uint8_t> mask;   // (T, B) in processing order, empty if none
  std::vector<Index> first_real;  // (B) first real step of each row (T if none)
  std::vector<S> m_h;          // (B, H) or empty
  std::vector<S> m_x;          // (B, D) or empty
};

template <typename S>
struct LSTMGrads {
  S* dx = nullptr;                 // (B, T, D), or (B, D) with constant_input; nullptr: not wanted
  S* dkernel = nullptr;            // (D, 4H)
  S* drecurrent_kernel = nullptr;  // (H, 4H)
  S* dbias = nullptr;              // (4H) or nullptr
  S* dh0 = nullptr;                // (B, H); nullptr: not wanted (dh0 = dz_0·Uᵀ is a step's product)
  S* dc0 = nullptr;                // (B, H); nullptr: not wanted
};

// Whether each of the `rows` rows of x (rows × D) is one-hot (a single 1, every other entry 0)
// or all zeros; if so, fills ids with the position of each 1 (−1 for a row of zeros). Reads
// x once, stopping at the first row that is neither.
template <typename S>
bool one_hot_rows(const S* x, Index rows, Index D, std::vector<int32_t>& ids);

// From this many features on, lstm_forward is given the ids of one-hot inputs.
constexpr Index kOneHotMinFeatures = 16;

// Streaming inference: B rows advanced one time step per call, with lstm_forward's
// arithmetic, so that T calls give the bits an inference forward over the T steps gives (the
// same B, weights and instruction set; no mask, not go_backwards). Holds its scratch; the
// packed weights must outlive it.
template <typename S>
class LSTMStream {
 public:
  LSTMStream(const LSTMPackedWeights<S>& weights, Index B, Activation phi, RecurrentActivation sigma);
  // x (B, D); h, c (B, H), updated in place to h_t, c_t. s: the step's index in its sequence
  // (0 after a reset); from_state: h, c hold an initial state at s = 0 (else zeros, whose
  // recurrent product is skipped, as lstm_forward skips it without h0).
  void step(const S* x, S* h, S* c, Index s, bool from_state);
  Index batch() const { return tl_.B; }
  const LSTMPackedWeights<S>& weights() const { return w_; }

 private:
  const LSTMPackedWeights<S>& w_;
  GateTiling tl_;
  Index cols_;
  const typename LSTMPackedWeights<S>::Panels& panels_;
  Activation phi_;
  RecurrentActivation sigma_;
  Buffer<S> z_;  // (B, 4H) pre-activations in tile order
  bool parallel_;  // the step's tiles shared out between threads (step_worth_threads)
};

// Forward over the whole sequence. outputs: (B,T,H) or (B,H); h_T, c_T: (B,H).
// With a cache, keeps what backward needs.
template <typename S>
void lstm_forward(const LSTMConfig& cfg, const LSTMInputs<S>& in, S* outputs, S* h_T, S* c_T,
                  LSTMCache<S>* cache);

// Packs the forward's kernel W (D, 4H), Keras's layout, as the cache's Wᵀ for dX (what a
// forward with input_gradient = false left out).
template <typename S>
void pack_input_transposed(LSTMCache<S>& cache, const S* W);

// Backward through time. d_outputs: like outputs or nullptr; d_hT, d_cT: (B,H) or nullptr.
// grads.dx needs the cache's Wᵀ (pack_input_transposed).
template <typename S>
void lstm_backward(const LSTMCache<S>& cache, const S* d_outputs, const S* d_hT, const S* d_cT,
                   const LSTMGrads<S>& grads);

// The naive reference: one time step after another, one unit after another, straight from
// the equations with std:: functions. Never optimised; the fast path is tested against it.
template <typename S>
void lstm_forward_naive(const LSTMConfig& cfg, const LSTMInputs<S>& in, S* outputs, S* h_T,
                        S* c_T);

LSTMFAST_NAMESPACE_END  // lstmfast
