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
  static constexpr int MR = 6;       // rows per micro-kernel call (12 accumulators)
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

  template <int R>
  static void micro(Index K, const S* A, Index lda, const S* panel, S* C, Index ldc, Index nc,
                    bool accumulate) {
    using namespace Eigen::internal;
    Packet c0[R], c1[R];
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = pset1<Packet>(S(0));
    for (Index k = 0; k < K; ++k) {
      const Packet b0 = ploadu<Packet>(panel + k * NR), b1 = ploadu<Packet>(panel + k * NR + PS);
      for (int r = 0; r < R; ++r) {
        const Packet a = pset1<Packet>(A[r * lda + k]);
        c0[r] = pmadd(a, b0, c0[r]);
        c1[r] = pmadd(a, b1, c1[r]);
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

  // C (M × N) = A (M × K, row stride lda) · B [+ C], B packed by pack().
  static void run(Index M, Index N, Index K, const S* A, Index lda, const S* Bp, S* C, Index ldc,
                  bool accumulate) {
    const Index npanels = (N + NR - 1) / NR;
    for (Index k0 = 0; k0 < K; k0 += kKc) {
      const Index kc = std::min(kKc, K - k0);
      const bool acc = accumulate || k0 > 0;
      for (Index p = 0; p < npanels; ++p) {
        const S* panel = Bp + p * K * NR + k0 * NR;
        const Index j = p * NR, nc = std::min<Index>(NR, N - j);
        const S* a = A + k0;
        Index i = 0;
        for (; i + MR <= M; i += MR) micro<MR>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc);
        switch (M - i) {
          case 5: micro<5>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc); break;
          case 4: micro<4>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc); break;
          case 3: micro<3>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc); break;
          case 2: micro<2>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc); break;
          case 1: micro<1>(kc, a + i * lda, lda, panel, C + i * ldc + j, ldc, nc, acc); break;
          default: break;
        }
      }
    }
  }
};

}  // namespace lstmfast
