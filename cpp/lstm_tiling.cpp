// lstm_tiling.cpp — the gate tiling and the packing of an LSTM's weights (lstm_tiling.h).
//
// Dimensions: B batch, T time steps, D input features, H units, G = 4H gate columns.
#include "lstm_tiling.h"

#include "gemm.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

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

template <typename S>
Buffer<S> pack_recurrent(const GateTiling& tl, const S* U, std::vector<Index>& offsets, const Index* colmap,
                         bool* finite) {
  using PG = PackedGemm<S>;
  const Index H = tl.H, G = kNumGates * H;
  offsets.assign(tl.n_unit_tiles + 1, 0);
  for (Index k = 0; k < tl.n_unit_tiles; ++k) offsets[k + 1] = offsets[k] + PG::packed_size(H, kNumGates * tl.width(k));
  Buffer<S> panels(offsets.back());
  // Every (unit tile, K chunk, group of kGroup panels) piece on its own, all in parallel: a
  // piece packs its panels of the chunk as pack_chunk packs a whole chunk (kc rows, panel
  // after panel), at their place in it.
  constexpr Index kGroup = 8;
  const Index panels_per_tile = (kNumGates * tl.unit_tile + PG::NR - 1) / PG::NR;  // of the widest tile
  const Index nk = PG::num_chunks(H), ng = (panels_per_tile + kGroup - 1) / kGroup;
  const Stores stores = PG::packing_stores(H, G);
  const CheckFinite check = finite ? CheckFinite::Yes : CheckFinite::No;
  std::vector<char> ok(tl.n_unit_tiles * nk * ng, 1);
  parallel_for_tiles(tl.n_unit_tiles * nk * ng, [&](Index t) {
    const Index k = t / (nk * ng), k0 = t / ng % nk * PG::kKc, g = t % ng, w = tl.width(k);
    const Index n = kNumGates * w, n0 = g * kGroup * PG::NR;  // the tile's columns, the piece's first
    if (n0 >= n) return;
    const Index m = std::min(kGroup * PG::NR, n - n0), kc = std::min(PG::kKc, H - k0);
    const Index np = (n + PG::NR - 1) / PG::NR;
    const Index c0 = kNumGates * tl.u0(k) + n0;  // the piece's first packed column
    // With a map, its columns are source columns: the piece reads U's rows from their start.
    const auto src = MatrixView<const S>::row_major((colmap ? U : U + c0) + k0 * G, kc, m, G);
    S* dst = panels.data() + offsets[k] + k0 * np * PG::NR + n0 / PG::NR * kc * PG::NR;
    ok[t] = PG::pack_chunk(src, 0, dst, Reorder{colmap ? colmap + c0 : nullptr}, check, stores);
  });
  if (finite) *finite = all_set(ok);
  return panels;
}

template <typename S>
Buffer<S> pack_recurrent_transposed(const GateTiling& tl, const S* U, std::vector<Index>& offsets,
                                    const Index* colmap) {
  using PG = PackedGemm<S>;
  const Index G = kNumGates * tl.H;
  offsets.assign(tl.n_unit_tiles + 1, 0);
  for (Index k = 0; k < tl.n_unit_tiles; ++k) offsets[k + 1] = offsets[k] + PG::packed_size(G, tl.width(k));
  Buffer<S> panels(offsets.back());
  const Index nk = PG::num_chunks(G);
  parallel_for_tiles(tl.n_unit_tiles * nk, [&](Index t) {
    const Index k = t / nk, k0 = t % nk * PG::kKc, u0 = tl.u0(k), w = tl.width(k);
    // Uᵀ's block (4H × w): rows of U [u0, u0 + w), read as columns, its rows in tile order.
    const auto src = MatrixView<const S>::transposed(U + u0 * G, G, w, G);
    PG::pack_chunk(src, k0, panels.data() + offsets[k], Reorder{nullptr, colmap});
  });
  return panels;
}

template <typename S>
Buffer<S> pack_input_weights(Index D, Index G, Index cols, const S* W, const Index* colmap, bool* finite) {
  using PG = PackedGemm<S>;
  Buffer<S> panels(PG::packed_size(D, G));
  const bool ok = PG::pack_parallel(MatrixView<const S>::row_major(W, D, G, G), cols, panels.data(),
                                    Reorder{colmap}, finite ? CheckFinite::Yes : CheckFinite::No,
                                    PG::packing_stores(D, G));
  if (finite) *finite = ok;
  return panels;
}

template <typename S>
Buffer<S> pack_input_weights_transposed(Index D, Index G, Index cols, const S* W, const Index* colmap) {
  using PG = PackedGemm<S>;
  Buffer<S> panels(PG::packed_size(G, D));
  PG::pack_parallel(MatrixView<const S>::transposed(W, G, D, G), cols, panels.data(), Reorder{nullptr, colmap});
  return panels;
}

template <typename S>
std::vector<S> tile_order_bias(Index G, const S* b, const Index* colmap) {
  std::vector<S> bias(G, S(0));
  if (b)
    for (Index n = 0; n < G; ++n) bias[n] = b[colmap ? colmap[n] : n];
  return bias;
}

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
  p->U = pack_recurrent(tl, recurrent_kernel.data(), p->U_offsets, colmap);
  p->bias = tile_order_bias(kNumGates * H, has_bias ? bias.data() : nullptr, colmap);
  panels_.push_back(std::move(p));
  return *panels_.back();
}

#define LSTMFAST_INSTANTIATE(S)                                                                          \
  template Buffer<S> pack_recurrent<S>(const GateTiling&, const S*, std::vector<Index>&, const Index*, bool*); \
  template Buffer<S> pack_recurrent_transposed<S>(const GateTiling&, const S*, std::vector<Index>&,         \
                                                  const Index*);                                           \
  template Buffer<S> pack_input_weights<S>(Index, Index, Index, const S*, const Index*, bool*);             \
  template Buffer<S> pack_input_weights_transposed<S>(Index, Index, Index, const S*, const Index*);         \
  template std::vector<S> tile_order_bias<S>(Index, const S*, const Index*);                                \
  template class LSTMPackedWeights<S>;
LSTMFAST_INSTANTIATE(float)
LSTMFAST_INSTANTIATE(double)
#undef LSTMFAST_INSTANTIATE

LSTMFAST_NAMESPACE_END  // lstmfast
