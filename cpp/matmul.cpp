// matmul.cpp — C = A·B [+ bias] [+ C] on fixed tiles (see matmul.h).
#include "matmul.h"

#include <algorithm>
#include <vector>

#include "buffer.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

template <typename S>
void matmul(const MatrixView<const S>& A, const MatrixView<const S>& B, const S* bias,
            const MatrixView<S>& C, Accumulate accumulate) {
  using PG = PackedGemm<S>;
  const Index M = A.rows, K = A.cols, N = B.cols;
  eigen_assert(B.rows == K && C.rows == M && C.cols == N && C.cs == 1);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = bias [+ C], or 0
    for (Index r = 0; r < M; ++r)
      for (Index j = 0; j < N; ++j)
        C.data[r * C.rs + j] = (accumulate == Accumulate::Yes ? C.data[r * C.rs + j] : S(0)) + (bias ? bias[j] : S(0));
    return;
  }
  // Tiles: tile_cols's columns and tile_rows's rows, cut finer when the tiles are few and the
  // threads cannot share them evenly (3 row tiles on 2 threads: 4 or 6 tiles instead of 3).
  // A narrow product (B of at most kNarrowPanels panels: Dense's ∂L/∂kernel = xᵀ·∂L/∂z for
  // few outputs) gets more row tiles, since each column tile packs A's rows again; any other
  // gets more column tiles. Neither changes a sum: the column tiles never do, and the rows
  // of a block of three or more sum k after k whatever block they are in, so row tiles of at
  // least kMinRows rows (near-equal row blocks of ≥ 3) give the same bits. So this may depend
  // on the threads.
  constexpr Index kNarrowPanels = 4;
  constexpr Index kMinRows = 3 * PG::MR;
  Index cols = PG::tile_cols(M, N), rows = PG::tile_rows(M);
  const Index threads = num_threads();
  Index mt = PG::row_tiles(M), nt = (N + cols - 1) / cols;
  if (mt * nt < 4 * threads && (mt * nt) % threads != 0) {
    const bool narrow = (N + PG::NR - 1) / PG::NR <= kNarrowPanels;
    Index more = mt;
    while ((more * nt) % threads != 0) ++more;
    const Index finer = (M + more - 1) / more;
    if (narrow && M - (more - 1) * finer >= kMinRows) {
      rows = finer;
      mt = more;
    } else {
      while ((mt * nt) % threads != 0) ++nt;
      const Index per_tile = (N + nt - 1) / nt;
      cols = (per_tile + PG::NR - 1) / PG::NR * PG::NR;  // whole panels
    }
  }
  Buffer<S> panels(PG::packed_size(K, N));
  PG::pack_parallel(B, cols, panels.data(), Reorder{}, CheckFinite::No, PG::packing_stores(K, N));
  // The bias is a row added to every row of C: a view with row stride 0.
  const MatrixView<const S> Y = bias ? MatrixView<const S>::repeated_row(bias, M, N) : MatrixView<const S>{};
  PG::run_parallel(A, panels.data(), cols, C, accumulate, Y, Sums::Partial, rows);
}

template <typename S>
void small_product(const MatrixView<const S>& A, const MatrixView<const S>& B, const MatrixView<S>& C,
                   Accumulate accumulate) {
  using PG = PackedGemm<S>;
  const Index M = A.rows, K = A.cols, N = B.cols;
  eigen_assert(B.rows == K && C.rows == M && C.cols == N && C.cs == 1 && (B.cs == 1 || B.rs == 1));
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum
    if (accumulate == Accumulate::No)
      for (Index r = 0; r < M; ++r) std::fill_n(C.data + r * C.rs, N, S(0));
    return;
  }
  // A row-major B of whole panels is read where it lies (attention's V, and K, Q and ∂L/∂O in
  // its backward); any other B is packed into this thread's buffer (a transposed B, Bᵀ
  // row-major, by PS × PS transposes in registers: packing moves values without arithmetic),
  // then one run over the rows. The sums are the packed GEMM's either way, whose order depends
  // on the sizes alone: not on the thread, nor on where the arrays lie in memory (Eigen's own
  // small products peel unaligned heads).
  if (B.cs == 1 && N % PG::NR == 0) {
    PG::run(A, B.data, C, accumulate, {}, Walk::Forwards, Sums::Partial, B.rs);
    return;
  }
  thread_local std::vector<S> panels;
  panels.resize(PG::packed_size(K, N));
  for (Index k0 = 0; k0 < K; k0 += PG::kKc) PG::pack_chunk(B, k0, panels.data());
  PG::run(A, panels.data(), C, accumulate);
}

template <typename S>
void batched_matmul(Index batch, const MatrixView<const S>& A, Index a_step, const MatrixView<const S>& B,
                    Index b_step, const MatrixView<S>& C, Index c_step) {
  if (batch == 0 || A.rows == 0 || B.cols == 0) return;
  // One product per tile (small_product), the tiles shared out between threads.
  parallel_for_runs(batch, [&](Index i) {
    small_product<S>({A.data + i * a_step, A.rows, A.cols, A.rs, A.cs}, {B.data + i * b_step, B.rows, B.cols, B.rs, B.cs},
                     {C.data + i * c_step, C.rows, C.cols, C.rs, C.cs}, Accumulate::No);
  });
}

template void small_product<float>(const MatrixView<const float>&, const MatrixView<const float>&,
                                   const MatrixView<float>&, Accumulate);
template void small_product<double>(const MatrixView<const double>&, const MatrixView<const double>&,
                                    const MatrixView<double>&, Accumulate);
template void batched_matmul<float>(Index, const MatrixView<const float>&, Index, const MatrixView<const float>&,
                                    Index, const MatrixView<float>&, Index);
template void batched_matmul<double>(Index, const MatrixView<const double>&, Index, const MatrixView<const double>&,
                                     Index, const MatrixView<double>&, Index);
template void matmul<float>(const MatrixView<const float>&, const MatrixView<const float>&, const float*,
                            const MatrixView<float>&, Accumulate);
template void matmul<double>(const MatrixView<const double>&, const MatrixView<const double>&, const double*,
                             const MatrixView<double>&, Accumulate);

LSTMFAST_NAMESPACE_END  // lstmfast
