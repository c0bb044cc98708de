// lstm_tiling.h — how an LSTM's gate columns are cut into tiles, how its weights are packed
// for the products of each tile, and how threads run the tiles step after step.
//
// Dimensions: B batch, T time steps, D input features, H units, G = 4H gate columns.
// Packed column order ("tile order"): unit tile by unit tile, each [i | f | c | o] blocks of
// the tile's width (GateTiling in lstm.h); with one unit tile it is Keras's order.
#pragma once

#include <vector>

#include "buffer.h"
#include "common.h"
#include "lstm.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// U (H, 4H) packed for the forward's step product, per unit tile k:
//   z_tile += h·U[:, tile's 4w columns]        packed B = (H × 4w)
// U is in Keras's order; colmap (tl.keras_columns(), or nullptr with one unit tile) maps tile
// order to its columns. Returns the panels; offsets[k] is where tile k's start. finite, when
// given, is set to whether every value of U is finite, tested on the way. A large U is
// written around the caches (PackedGemm::packing_stores).
template <typename S>
Buffer<S> pack_recurrent(const GateTiling& tl, const S* U, std::vector<Index>& offsets, const Index* colmap,
                         bool* finite = nullptr);

// Uᵀ packed for the backward's step product, per unit tile k:
//   dh_tile = dz·U[tile's w rows, :]ᵀ           packed B = (4H × w)
// U, colmap and offsets as in pack_recurrent (the packed rows follow tile order).
template <typename S>
Buffer<S> pack_recurrent_transposed(const GateTiling& tl, const S* U, std::vector<Index>& offsets,
                                    const Index* colmap);

// W (D, 4H) packed for the input projection Z = X·W + b, column tiles cols wide, its columns
// in tile order (colmap: tile order to Keras's columns, or nullptr). finite, when given, is
// set to whether every value of W is finite, tested on the way. A large W is written around
// the caches (PackedGemm::packing_stores).
template <typename S>
Buffer<S> pack_input_weights(Index D, Index G, Index cols, const S* W, const Index* colmap,
                             bool* finite = nullptr);

// Wᵀ (4H, D) packed for the backward's dX = dZ·Wᵀ, column tiles cols wide, its rows in tile
// order (colmap as in pack_input_weights).
template <typename S>
Buffer<S> pack_input_weights_transposed(Index D, Index G, Index cols, const S* W, const Index* colmap);

// b (4H) in tile order (packed column n is Keras's column colmap[n]); zeros without a bias.
template <typename S>
std::vector<S> tile_order_bias(Index G, const S* b, const Index* colmap);

// Whether a stream's step (LSTMStream, one step per call) is worth sharing out between
// threads: a step whose recurrent product has fewer multiply-adds than this (B·H·4H) costs
// less on one thread than waking the team for each call (B = 1: H = 128 on one thread, H = 512
// on two; docs/benchmarks.md). Results never depend on it.
constexpr Index kParallelStepWork = Index(1) << 17;
inline bool step_worth_threads(const GateTiling& tl) { return tl.B * tl.H * 4 * tl.H >= kParallelStepWork; }

// Whether an inference forward projects its inputs step by step inside the time loop,
// z_t = x_t·W + b into a buffer of one tile, instead of for all steps at once into Z
// (T·B × 4H) that every step then reads back (lstm_forward). Per step and tile, the first
// reads W (D × 4H) again, from cache; the second writes and reads back the tile's rows of Z
// (rows × 4H, twice), from further away: narrow inputs and tiles of many rows favour the first
// (docs/benchmarks.md). Results never depend on it. D stays within one K chunk of the packed W
// (PackedGemm::kKc).
constexpr Index kStepProjectionD = 64;
inline bool project_by_step(const GateTiling& tl, Index D) {
  return D <= kStepProjectionD && D <= 4 * tl.batch_tile;
}

// The backward of a one-hot input adds each step's dz rows into its dW = Xᵀ·dZ inside the time
// loop, into a copy of dW per batch tile, when those copies take at most this many bytes
// (n_batch_tiles · D · 4H values); larger ones are summed after the loop from dZ. The order of
// the sums depends on the sizes alone either way.
constexpr Index kInLoopGradientBytes = Index(8) << 20;

// Runs body(s, k) for every tile k of every step s = 0..T−1 (or T−1..0 when reverse), each
// thread owning the tiles k ≡ tid (mod threads) for the whole loop. When units are split
// across tiles, step s needs all of step s−1 and the threads meet at a barrier; otherwise
// each thread runs its batch rows through time on its own. The tiles never depend on the
// thread count, so neither do the results.
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

LSTMFAST_NAMESPACE_END  // lstmfast
