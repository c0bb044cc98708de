// gemm.h — a small GEMM on pre-packed weights, for the products inside the time loop.
//
// Inside the loop the same weight matrix multiplies a new small batch every step. A general
// GEMM (Eigen's) repacks the weights on every call; here they are packed once per sequence
// into column panels of width NR = 2 SIMD packets, stored K rows × NR contiguous, and a
// register-blocked micro-kernel computes MR × NR blocks of C = A·B:
//
//   for each panel (NR columns) and each block of MR rows of A:
//     acc[r][0..NR) = Σ_k A[r,k] · panel[k, 0..NR)        (MR·2 packet accumulators, FMA)
//
// K is walked in fixed chunks of kKc so a panel chunk stays in L1; the order of the sum over
// k is fixed by the sizes alone, so results never depend on threads.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "common.h"

namespace lstmfast {

template <typename S>
struct PackedGemm {
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  static constexpr int PS = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr int NR = 2 * PS;  // panel width
  // Rows per micro-kernel call: 2·MR accumulators fill the vector registers (16 or 32).
  static constexpr int MR = PS * sizeof(S) >= 64 ? 12 : 6;
  static constexpr Index kKc = 256;  // K chunk

  // Size of the packed form of a K × N matrix.
  static Index packed_size(Index K, Index N) { return K * ((N + NR - 1) / NR) * NR; }

  // Packs B (K × N), element (k, n) at src[k·rs + n·cs], into panels at dst.
  static void pack(Index K, Index N, const S* src, Index rs, Index cs, S* dst) {
    for (Index j = 0; j < N; j += NR) {
      const Index nc = std::min<Index>(NR, N - j);
      for (Index k = 0; k < K; ++k, dst += NR) {
        const S* s = src + k * rs + j * cs;
        Index c = 0;
        if (cs == 1)
          for (; c < nc; ++c) dst[c] = s[c];
        else
          for (; c < nc; ++c) dst[c] = s[c * cs];
        for (; c < NR; ++c) dst[c] = S(0);
      }
    }
  }

  // acc (R × NR) = Σ_k A[r, k] · panel[k, :], then C (R × nc) = acc [+ C].
  // A's element (r, k) is at A[r·ars + k·aks] (row-major A: ars = lda, aks = 1; Aᵀ: swapped).
  // pack() over groups of panels in parallel.
  static void pack_parallel(Index K, Index N, const S* src, Index rs, Index cs, S* dst) {
    constexpr Index kGroup = 16;
    const Index np = (N + NR - 1) / NR;
    parallel_for_tiles((np + kGroup - 1) / kGroup, [&](Index t) {
      const Index p0 = t * kGroup, j0 = p0 * NR;
      pack(K, std::min(kGroup * NR, N - j0), src + j0 * cs, rs, cs, dst + p0 * K * NR);
    });
  }

  template <int R>
  static void micro(Index K, const S* A, Index ars, Index aks, const S* panel, S* C, Index ldc,
                    Index nc, bool accumulate) {
    using namespace Eigen::internal;
    Packet c0[R], c1[R];
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = pzero(Packet());
    Index k = 0;
    if constexpr (R <= 2) {
      // Few rows leave too few accumulators to hide the FMA latency: keep four partial sums
      // per accumulator (k mod 4) and add them at the end.
      Packet p0[R][3], p1[R][3];
      for (int r = 0; r < R; ++r)
        for (int u = 0; u < 3; ++u) p0[r][u] = p1[r][u] = pzero(Packet());
      for (; k + 4 <= K; k += 4) {
        for (int u = 0; u < 4; ++u) {
          const S* pk = panel + (k + u) * NR;
          const Packet b0 = ploadu<Packet>(pk), b1 = ploadu<Packet>(pk + PS);
          const S* a = A + (k + u) * aks;
          for (int r = 0; r < R; ++r) {
            const Packet ar = pset1<Packet>(a[r * ars]);
            Packet& s0 = u == 0 ? c0[r] : p0[r][u - 1];
            Packet& s1 = u == 0 ? c1[r] : p1[r][u - 1];
            s0 = pmadd(ar, b0, s0);
            s1 = pmadd(ar, b1, s1);
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        c0[r] = padd(padd(c0[r], p0[r][0]), padd(p0[r][1], p0[r][2]));
        c1[r] = padd(padd(c1[r], p1[r][0]), padd(p1[r][1], p1[r][2]));
      }
    }
    for (; k < K; ++k) {
      const Packet b0 = ploadu<Packet>(panel + k * NR), b1 = ploadu<Packet>(panel + k * NR + PS);
      const S* a = A + k * aks;
      for (int r = 0; r < R; ++r) {
        const Packet ar = pset1<Packet>(a[r * ars]);
        c0[r] = pmadd(ar, b0, c0[r]);
        c1[r] = pmadd(ar, b1, c1[r]);
      }
    }
    if (nc == NR) {
      for (int r = 0; r < R; ++r) {
        S* c = C + r * ldc;
        if (accumulate) {
          c0[r] = padd(c0[r], ploadu<Packet>(c));
          c1[r] = padd(c1[r], ploadu<Packet>(c + PS));
        }
        pstoreu(c, c0[r]);
        pstoreu(c + PS, c1[r]);
      }
    } else {
      alignas(64) S tmp[NR];
      for (int r = 0; r < R; ++r) {
        pstoreu(tmp, c0[r]);
        pstoreu(tmp + PS, c1[r]);
        S* c = C + r * ldc;
        for (Index j = 0; j < nc; ++j) c[j] = accumulate ? c[j] + tmp[j] : tmp[j];
      }
    }
  }

  // The last rows of a block (fewer than MR): micro<rows> chosen at run time.
  template <int R>
  static void micro_tail(Index rows, Index K, const S* A, Index ars, Index aks, const S* panel,
                         S* C, Index ldc, Index nc, bool accumulate) {
    if constexpr (R > 0) {
      if (rows == R) micro<R>(K, A, ars, aks, panel, C, ldc, nc, accumulate);
      else micro_tail<R - 1>(rows, K, A, ars, aks, panel, C, ldc, nc, accumulate);
    }
  }

  // C (M × N) = A (M × K) · B [+ C]; B packed by pack(), starting at its first panel.
  static void run(Index M, Index N, Index K, const S* A, Index ars, Index aks, const S* Bp, S* C,
                  Index ldc, bool accumulate) {
    const Index npanels = (N + NR - 1) / NR;
    for (Index k0 = 0; k0 < K; k0 += kKc) {
      const Index kc = std::min(kKc, K - k0);
      const bool acc = accumulate || k0 > 0;
      const S* a = A + k0 * aks;
      for (Index p = 0; p < npanels; ++p) {
        const S* panel = Bp + p * K * NR + k0 * NR;
        const Index j = p * NR, nc = std::min<Index>(NR, N - j);
        Index i = 0;
        for (; i + MR <= M; i += MR) micro<MR>(kc, a + i * ars, ars, aks, panel, C + i * ldc + j, ldc, nc, acc);
        if (i < M) micro_tail<MR - 1>(M - i, kc, a + i * ars, ars, aks, panel, C + i * ldc + j, ldc, nc, acc);
      }
    }
  }

  // The same product over fixed (kRows × kCols) tiles of C in parallel: A is read from L2
  // by one tile's panels, and tiles do not depend on the thread count.
  static void run_parallel(Index M, Index N, Index K, const S* A, Index ars, Index aks, const S* Bp,
                           S* C, Index ldc, bool accumulate) {
    constexpr Index kRows = 16 * MR, kCols = 16 * NR;
    const Index mt = (M + kRows - 1) / kRows, nt = (N + kCols - 1) / kCols;
    parallel_for_tiles(mt * nt, [&](Index t) {
      const Index r0 = (t / nt) * kRows, c0 = (t % nt) * kCols;
      run(std::min(kRows, M - r0), std::min(kCols, N - c0), K, A + r0 * ars, ars, aks,
          Bp + (c0 / NR) * K * NR, C + r0 * ldc + c0, ldc, accumulate);
    });
  }
};

}  // namespace lstmfast
