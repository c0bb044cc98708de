// common.h — shared pieces of the lstmfast kernels: Eigen aliases, the thread count,
// and the floating-point guard that flushes denormals inside a kernel.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <xmmintrin.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace lstmfast {

using Index = Eigen::Index;

// Row-major views over numpy memory; an outer stride lets a view pick a block of columns.
template <typename S>
using MatR = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using MapR = Eigen::Map<MatR<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename S>
using CMapR = Eigen::Map<const MatR<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <typename S>
using CArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

// Threads used by every kernel (set from Python; defaults to the physical cores).
int num_threads();
void set_num_threads(int n);

// Denormal floats make recurrences crawl (a decaying cell state underflows into them):
// flush them to zero (FTZ) and treat denormal inputs as zero (DAZ) while a kernel runs,
// then restore the caller's MXCSR. MXCSR is per thread, so each OpenMP thread holds one.
class DenormalGuard {
 public:
  DenormalGuard() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ | DAZ
  ~DenormalGuard() { _mm_setcsr(saved_); }
  DenormalGuard(const DenormalGuard&) = delete;
  DenormalGuard& operator=(const DenormalGuard&) = delete;

 private:
  unsigned saved_;
};

// Runs f(tile) for tiles 0..n-1 on up to num_threads() threads, each under a DenormalGuard.
// Work is split into fixed tiles that do not depend on the thread count, so results are
// bitwise identical whatever the number of threads.
template <typename F>
void parallel_for_tiles(Index n, F&& f) {
  const int nt = static_cast<int>(std::min<Index>(num_threads(), n));
  if (nt <= 1) {
    DenormalGuard guard;
    for (Index k = 0; k < n; ++k) f(k);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    DenormalGuard guard;
#pragma omp for schedule(dynamic, 1)
    for (Index k = 0; k < n; ++k) f(k);
  }
}

// C (M×N) = A (M×K) · B (K×N) [+ C if accumulate], all row-major with the given leading
// dimensions, computed tile by tile (kRowTile × kColTile) in parallel.
template <typename S>
void gemm_tiled(Index M, Index N, Index K, const S* A, Index lda, const S* B, Index ldb, S* C,
                Index ldc, bool accumulate, bool transpose_a = false, bool transpose_b = false) {
  constexpr Index kRowTile = 64, kColTile = 256;
  const Index mt = (M + kRowTile - 1) / kRowTile, ntl = (N + kColTile - 1) / kColTile;
  parallel_for_tiles(mt * ntl, [&](Index k) {
    const Index r0 = (k / ntl) * kRowTile, c0 = (k % ntl) * kColTile;
    const Index rm = std::min(kRowTile, M - r0), cn = std::min(kColTile, N - c0);
    MapR<S> c(C + r0 * ldc + c0, rm, cn, Eigen::OuterStride<>(ldc));
    // A is (M×K), or stored as (K×M) when transpose_a; likewise B.
    auto run = [&](const auto& a, const auto& b) {
      if (accumulate) c.noalias() += a * b;
      else c.noalias() = a * b;
    };
    if (!transpose_a && !transpose_b) {
      run(CMapR<S>(A + r0 * lda, rm, K, Eigen::OuterStride<>(lda)),
          CMapR<S>(B + c0, K, cn, Eigen::OuterStride<>(ldb)));
    } else if (transpose_a && !transpose_b) {
      run(CMapR<S>(A + r0, K, rm, Eigen::OuterStride<>(lda)).transpose(),
          CMapR<S>(B + c0, K, cn, Eigen::OuterStride<>(ldb)));
    } else if (!transpose_a && transpose_b) {
      run(CMapR<S>(A + r0 * lda, rm, K, Eigen::OuterStride<>(lda)),
          CMapR<S>(B + c0 * ldb, cn, K, Eigen::OuterStride<>(ldb)).transpose());
    } else {
      run(CMapR<S>(A + r0, K, rm, Eigen::OuterStride<>(lda)).transpose(),
          CMapR<S>(B + c0 * ldb, cn, K, Eigen::OuterStride<>(ldb)).transpose());
    }
  });
}

}  // namespace lstmfast
