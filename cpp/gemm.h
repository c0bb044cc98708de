// gemm.h — a small GEMM on pre-packed weights, for the products inside the time loop.
//
// Inside the loop the same weight matrix multiplies a new small batch every step. A general
// GEMM (Eigen's) repacks the weights on every call; here they are packed once per sequence
// into column panels of width NR = 2 SIMD packets, K chunk by K chunk (kKc rows): the kc × NR
// panels of one chunk lie one after another, so a chunk is one contiguous stream that the
// hardware prefetcher follows. A register-blocked micro-kernel computes blocks of up to
// MR rows × NR columns of C = A·B:
//
//   for each K chunk (kKc): pack A's rows, k-major, in blocks of ≤ MR rows
//     for each panel (NR columns, kept in L1), for each row block:
//       acc[r][0..NR) = Σ_k A[r,k] · panel[k, 0..NR)        (MR·2 packet accumulators, FMA)
//
// so B streams from memory once per call. Memory latency is hidden in software where the
// hardware cannot guess: a B larger than L2 is fetched one panel ahead, and the C rows that a
// block adds to (a step's pre-activations, far away in memory) are fetched before its k loop.
// A B larger than L2 that is multiplied again and again (the recurrent weights, once per step)
// is walked forwards and backwards on alternate calls: each call then starts on the panels the
// previous one used last, which are still in cache, instead of on those its end evicted.
// The order of the sum over k is fixed by the sizes (and that direction) alone, so results
// never depend on threads.
#pragma once

#include <Eigen/Core>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// A matrix in memory: element (r, c) at data[r·rs + c·cs]. A row-major matrix with leading
// dimension ld has rs = ld, cs = 1; its transpose the two swapped; rs = 0 repeats one row.
template <typename T>
struct MatrixView {
  T* data = nullptr;
  Index rows = 0, cols = 0, rs = 0, cs = 1;

  // rows × cols, row r at data + r·ld.
  static MatrixView row_major(T* data, Index rows, Index cols, Index ld) { return {data, rows, cols, ld, 1}; }
  // rows × cols, the transpose of the row-major (cols × rows) matrix at data, leading dimension ld.
  static MatrixView transposed(T* data, Index rows, Index cols, Index ld) { return {data, rows, cols, 1, ld}; }
  // rows × cols, every row the same cols values at data (a bias added to every row).
  static MatrixView repeated_row(T* data, Index rows, Index cols) { return {data, rows, cols, 0, 1}; }
  // Rows [r0, r0 + n) and columns [c0, c0 + m).
  MatrixView block(Index r0, Index c0, Index n, Index m) const { return {data + r0 * rs + c0 * cs, n, m, rs, cs}; }
};

// C = A·B [+ Y], or C += A·B [+ Y].
enum class Accumulate : bool { No = false, Yes = true };
// The order in which run() visits a packed B's chunks and panels (see run()).
enum class Walk : bool { Forwards = false, Backwards = true };
// Whether packing also tests every value it reads for NaN and ±inf.
enum class CheckFinite : bool { No = false, Yes = true };
// How packing writes its panels: through the caches, or around them (non-temporal stores).
enum class Stores : bool { Cached = false, AroundCaches = true };
// How a block of one or two rows sums over k: in four partial sums (k mod 4, added at the end),
// which hides the FMA latency, or in one, k after k, as blocks of more rows always do. The LSTM's
// input projection sums k after k in every block, so that a row's result does not depend on
// how many rows it is multiplied with (a stream's one row gives predict's bits).
enum class Sums : bool { Partial = false, Sequential = true };

// Reorderings applied while packing: packed column n is source column cols[n], packed row k
// is source row rows[k]; nullptr keeps the order.
struct Reorder {
  const Index* cols = nullptr;
  const Index* rows = nullptr;
};

template <typename S>
struct PackedGemm {
  using View = MatrixView<const S>;
  using OutView = MatrixView<S>;
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  static constexpr int PS = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr int NR = 2 * PS;  // panel width
  // Rows per micro-kernel call: 2·MR accumulators fill the vector registers (16 or 32).
  static constexpr int MR = PS * sizeof(S) >= 64 ? 12 : 6;
  static constexpr Index kKc = 256;       // K chunk
  static constexpr Index kCols = 16 * NR;  // columns of one run_parallel tile (at most)
  static constexpr Index kRows = 16 * MR;  // rows of one run_parallel tile
  static constexpr Index kStreamBytes = Index(1) << 19;  // packed B above this (L2): prefetch it
  static constexpr Index kDirectPanels = 8;  // A's rows read unpacked against at most this many panels
  // A packed matrix this large is written around the caches (see streams_packing).
  static constexpr Index kStreamPackBytes = Index(8) << 20;

  // Width of run_parallel's column tiles for an M × N product: kCols, or, when the rows make
  // a single tile, half the columns rounded up to panels, so that two threads share a small
  // product (the weight gradients of a small LSTM). A function of the sizes only, as the
  // results must not depend on threads; the packing and the product must use the same width.
  static Index tile_cols(Index M, Index N) {
    if (M > kRows || N <= NR) return kCols;
    return std::min(kCols, (N / 2 + NR - 1) / NR * NR);
  }

  // Whether rows ld values apart fall into the same set of the L1 cache (a multiple of 4 KB
  // apart): a block of MR such rows, read where they lie, would need more ways than L1 has.
  static bool rows_share_l1_sets(Index ld) { return (ld * Index(sizeof(S))) % 4096 == 0; }

  // Size of the packed form of a K × N matrix.
  static Index packed_size(Index K, Index N) { return K * ((N + NR - 1) / NR) * NR; }

  static Index num_chunks(Index K) { return (K + kKc - 1) / kKc; }  // K chunks of kKc rows

  // How the packed form of a K × N matrix is written: around the caches (non-temporal
  // stores) from 8 MB on (a large layer's weights, packed at every forward), which would not
  // stay in a core's share of L3 until its product reads it, and which a plain store would
  // first read line by line from memory (docs/benchmarks.md has the packing times).
  static Stores packing_stores(Index K, Index N) {
    return packed_size(K, N) * Index(sizeof(S)) >= kStreamPackBytes ? Stores::AroundCaches : Stores::Cached;
  }

  // A non-temporal store of v at d, which is aligned to a packet.
  static EIGEN_ALWAYS_INLINE void store_around_caches(S* d, const Packet& v) {
    if constexpr (sizeof(Packet) == 64) {
#ifdef __AVX512F__
      if constexpr (std::is_same_v<S, float>) _mm512_stream_ps(d, v);
      else _mm512_stream_pd(d, v);
#endif
    } else if constexpr (sizeof(Packet) == 32) {
#ifdef __AVX__
      if constexpr (std::is_same_v<S, float>) _mm256_stream_ps(d, v);
      else _mm256_stream_pd(d, v);
#endif
    } else {
      if constexpr (std::is_same_v<S, float>) _mm_stream_ps(d, v);
      else _mm_stream_pd(d, v);
    }
  }

  // Packed layout of B (K × N, the view src): K chunk by K chunk (kKc rows), and within a
  // chunk panel by panel (kc rows × NR), so that the micro-kernels of one chunk read one
  // contiguous stream. pack_chunk() writes the chunk of rows [k0, k0 + kKc) at its place in
  // dst; chunks are independent, so the packers share them out between threads. The source is
  // read along its contiguous direction: row by row (src.cs = 1), each row's NR-wide pieces
  // going to their panels, or column by column.
  // A column map (order.cols), when given, reorders the columns on the way: packed column n
  // is source column order.cols[n]. A row map (order.rows) does the same for the rows, column
  // by column only (src.cs ≠ 1); the row-by-row path, which packs every forward's weights,
  // stays free of it.
  // CheckFinite::Yes (row-by-row path only): also test every value read for NaN and ±inf on
  // the way, which then costs no pass of its own over the source; returns false when one is
  // not finite (true when not asked). Stores::AroundCaches (row-by-row path only): write the
  // panels with non-temporal stores (packing_stores).
  static bool pack_chunk(const View& src, Index k0, S* dst, const Reorder& order = {},
                         CheckFinite check_finite = CheckFinite::No, Stores stores = Stores::Cached) {
    const Index K = src.rows, N = src.cols, rs = src.rs, cs = src.cs;
    const Index* colmap = order.cols;
    const Index* rowmap = order.rows;
    const bool check = check_finite == CheckFinite::Yes;
    bool stream = stores == Stores::AroundCaches;
    const Index np = (N + NR - 1) / NR;
    const Index kc = std::min(kKc, K - k0);
    S* chunk = dst + k0 * np * NR;
    auto col = [&](Index n) { return colmap ? colmap[n] : n; };
    auto row = [&](Index k) { return rowmap ? rowmap[k] : k; };
    if (cs == 1) {
      // Per panel: the source column its NR columns start at when they lie side by side there
      // (every full panel without a map), else −1 (a tail panel, or columns the map scatters).
      std::vector<Index> start(np, -1);
      for (Index p = 0; p < N / NR; ++p) {
        start[p] = col(p * NR);
        for (Index c = 1; c < NR && start[p] >= 0; ++c)
          if (col(p * NR + c) != start[p] + c) start[p] = -1;
      }
      eigen_assert(!rowmap && "a row map needs the column-by-column path (cs != 1)");
      using namespace Eigen::internal;
      // x·0 is 0 for a finite x and NaN otherwise: the sum over every value read is 0
      // exactly when all of them are finite (as all_finite in common.h).
      Packet bad = pzero(Packet());
      S bad_scalar = 0;
      // kRowBlock source rows at a time, panel by panel: each panel then receives
      // kRowBlock·NR consecutive values at once instead of NR (faster than row by row:
      // docs/benchmarks.md), while the rows are still read in order.
      constexpr Index kRowBlock = 4;
      // Non-temporal stores need aligned addresses: every packed row is, when the chunk is.
      stream = stream && reinterpret_cast<std::uintptr_t>(chunk) % sizeof(Packet) == 0;
      // One row's NR values of a panel whose columns lie side by side in the source: two
      // packet moves (std::copy of NR values calls memmove).
      auto move = [&](const S* s, S* d) {
        const Packet v0 = ploadu<Packet>(s), v1 = ploadu<Packet>(s + PS);
        if (stream) {
          store_around_caches(d, v0);
          store_around_caches(d + PS, v1);
        } else {
          pstoreu(d, v0);
          pstoreu(d + PS, v1);
        }
        if (check) bad = pmadd(v1, pzero(v1), pmadd(v0, pzero(v0), bad));
      };
      for (Index kb = 0; kb < kc; kb += kRowBlock) {
        const Index nk = std::min(kRowBlock, kc - kb);
        const S* rows = src.data + (k0 + kb) * rs;  // the block's first source row
        for (Index p = 0; p < np; ++p) {
          S* d = chunk + (p * kc + kb) * NR;
          if (start[p] >= 0) {
            const S* s = rows + start[p];
            if (nk == kRowBlock) {  // a whole block: a fixed count that the compiler unrolls
#pragma GCC unroll 4
              for (Index k = 0; k < kRowBlock; ++k) move(s + k * rs, d + k * NR);
            } else {
              for (Index k = 0; k < nk; ++k) move(s + k * rs, d + k * NR);
            }
          } else {  // a tail panel, or columns the map scatters: value by value
            const Index nc = std::min<Index>(NR, N - p * NR);
            for (Index k = 0; k < nk; ++k, d += NR) {
              for (Index c = 0; c < nc; ++c) d[c] = rows[k * rs + col(p * NR + c)];
              std::fill(d + nc, d + NR, S(0));
              if (check)
                for (Index c = 0; c < nc; ++c) bad_scalar += d[c] * S(0);
            }
          }
        }
      }
      if (stream) _mm_sfence();  // the stores around the caches done before the panels are read
      return !check || predux(bad) + bad_scalar == S(0);
    } else {
      eigen_assert(!check && !stream && "check and stream are for the row-by-row path (cs == 1)");
      using namespace Eigen::internal;
      for (Index p = 0; p < np; ++p) {
        S* d = chunk + p * kc * NR;
        const Index nc = std::min<Index>(NR, N - p * NR);
        auto scalar = [&](Index kb, Index ke) {  // rows [kb, ke) of the panel, one value at a time
          for (Index c = 0; c < nc; ++c) {
            const S* s = src.data + col(p * NR + c) * cs;
            for (Index k = kb; k < ke; ++k) d[k * NR + c] = s[row(k0 + k) * rs];
          }
          for (Index c = nc; c < NR; ++c)
            for (Index k = kb; k < ke; ++k) d[k * NR + c] = S(0);
        };
        Index k = 0;
        if (rs == 1) {
          // The source's rows lie side by side (a transposed matrix): PS × PS blocks are
          // transposed in registers, PS packed rows at a time, where the map keeps PS
          // consecutive rows together; the columns a tail panel lacks are packets of zeros.
          for (; k + PS <= kc; k += PS) {
            const Index r0 = row(k0 + k);
            if (rowmap && row(k0 + k + PS - 1) != r0 + PS - 1) {
              scalar(k, k + PS);
              continue;
            }
            for (int half = 0; half < 2; ++half) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Packet's alignment attribute: harmless
              PacketBlock<Packet, PS> block;
#pragma GCC diagnostic pop
              for (int i = 0; i < PS; ++i) {
                const Index c = half * PS + i;
                block.packet[i] = c < nc ? ploadu<Packet>(src.data + col(p * NR + c) * cs + r0) : pzero(Packet());
              }
              if (half * PS < nc) ptranspose(block);
              for (int i = 0; i < PS; ++i) pstoreu(d + (k + i) * NR + half * PS, block.packet[i]);
            }
          }
        }
        scalar(k, kc);
      }
    }
    return true;
  }

  // Packs B (K × N, the view src) for run_parallel: its column tiles (cols wide, from
  // tile_cols), the tile of column j0 at dst + j0·K, each laid out as a whole matrix is; the
  // (tile, K chunk) pieces in parallel. order (N column and K row entries), check_finite and
  // stores as in pack_chunk; returns false when check_finite finds a value that is not finite.
  static bool pack_parallel(const View& src, Index cols, S* dst, const Reorder& order = {},
                            CheckFinite check_finite = CheckFinite::No, Stores stores = Stores::Cached) {
    const Index K = src.rows, N = src.cols;
    const Index nk = num_chunks(K), pieces = (N + cols - 1) / cols * nk;
    std::vector<char> finite(pieces, 1);
    parallel_for_tiles(pieces, [&](Index t) {
      const Index j0 = t / nk * cols, n = std::min(cols, N - j0);
      // A map holds source columns, so its tile reads from src itself; without one the
      // tile's columns start at column j0.
      const View tile = order.cols ? View{src.data, K, n, src.rs, src.cs} : src.block(0, j0, K, n);
      const Reorder tile_order{order.cols ? order.cols + j0 : nullptr, order.rows};
      finite[t] = pack_chunk(tile, t % nk * kKc, dst + j0 * K, tile_order, check_finite, stores);
    });
    return all_set(finite);
  }

  // Writes rows [r0, r0 + n) of B (K × N, row-major, rows ld apart, src its row r0) where
  // pack_parallel(·, cols, dst) puts them, zeros included in a last panel's missing columns:
  // a matrix produced row block by row block (an LSTM's dz, step by step) is packed while its
  // rows are still in cache, instead of in a pass of its own afterwards. No maps.
  static void pack_rows(const S* src, Index ld, Index r0, Index n, Index K, Index N, Index cols, S* dst) {
    using namespace Eigen::internal;
    for (Index j0 = 0; j0 < N; j0 += cols) {
      const Index nt = std::min(cols, N - j0), np = (nt + NR - 1) / NR;
      S* tile = dst + j0 * K;
      for (Index i = 0; i < n; ++i) {
        const Index r = r0 + i, k0 = r / kKc * kKc, kc = std::min(kKc, K - k0);
        const S* s = src + i * ld + j0;
        S* d = tile + k0 * np * NR + (r - k0) * NR;  // row r of the chunk's first panel
        for (Index p = 0; p < np; ++p, d += kc * NR) {
          const Index nc = std::min<Index>(NR, nt - p * NR);
          if (nc == NR) {
            pstoreu(d, ploadu<Packet>(s + p * NR));
            pstoreu(d + PS, ploadu<Packet>(s + p * NR + PS));
          } else {
            std::copy_n(s + p * NR, nc, d);
            std::fill(d + nc, d + NR, S(0));
          }
        }
      }
    }
  }

  // Packs rows [0, R) × columns [0, kc) of A (element (r, k) at A[r·ars + k·aks]) k-major:
  // dst[k·R + r], so the micro-kernel reads R consecutive values per k.
  template <int R>
  static void pack_a(Index kc, const S* A, Index ars, Index aks, S* dst) {
    if (aks == 1) {
      for (int r = 0; r < R; ++r) {
        const S* a = A + r * ars;
        for (Index k = 0; k < kc; ++k) dst[k * R + r] = a[k];
      }
    } else if (ars == 1) {  // a transposed A: each k's R values lie side by side, a copy of fixed size
      for (Index k = 0; k < kc; ++k) {
        const S* a = A + k * aks;
        S* d = dst + k * R;
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) d[r] = a[r];
      }
    } else {
      for (Index k = 0; k < kc; ++k)
        for (int r = 0; r < R; ++r) dst[k * R + r] = A[r * ars + k * aks];
    }
  }

  // Brings NR consecutive values (a packed row, or a row of a C block: one or two cache lines)
  // towards L1.
  static EIGEN_ALWAYS_INLINE void prefetch_row(const S* p) {
    for (unsigned l = 0; l < NR * sizeof(S); l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p) + l, _MM_HINT_T0);
  }

  // acc (R × NR) = Σ_k A[r, k] · panel[k, :], then C (R × nc) = acc [+ Y] [+ C], Y's row r
  // at Y + r·ldy (ldy = 0: one row added to every row, a bias). A's block: packed by pack_a
  // (Ap[k·R + r]), or, Direct, read where it lies, its rows lda apart (Ap[r·lda + k]): the
  // same values in the same order, so the same sums. Half: a panel of nc ≤ PS columns (the
  // last of an N that ends in its first packet), whose second packet of zeros is neither
  // loaded nor multiplied.
  template <int R, bool Prefetch, Sums Order = Sums::Partial, bool Half = false, bool Direct = false>
  static EIGEN_ALWAYS_INLINE void micro(Index K, const S* __restrict Ap, Index lda, const S* __restrict panel,
                                        Index ldb, S* C, Index ldc, Index nc, bool accumulate, const S* Y,
                                        Index ldy, const S* pf) {
    using namespace Eigen::internal;
    auto a_at = [&](Index k, int r) -> S {
      if constexpr (Direct) return Ap[r * lda + k];
      else return Ap[k * R + r];
    };
    // The C rows that are added to at the end (a step's pre-activations, written by the input
    // projection long before) are fetched now, so that the loads at the end hit L1.
    if (accumulate) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) prefetch_row(C + r * ldc);
    }
    Packet c0[R], c1[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) c0[r] = c1[r] = pzero(Packet());
    Index k = 0;
    if constexpr (R <= 2 && Order == Sums::Partial) {
      // Few rows leave too few accumulators to hide the FMA latency: keep four partial sums
      // per accumulator (k mod 4) and add them at the end.
      Packet p0[R][3], p1[R][3];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
        for (int u = 0; u < 3; ++u) p0[r][u] = p1[r][u] = pzero(Packet());
      for (; k + 4 <= K; k += 4) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          const S* pk = panel + (k + u) * ldb;
          if constexpr (Prefetch) prefetch_row(pf + (k + u) * NR);
          const Packet b0 = ploadu<Packet>(pk), b1 = Half ? b0 : ploadu<Packet>(pk + PS);
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            const Packet ar = pset1<Packet>(a_at(k + u, r));
            Packet& s0 = u == 0 ? c0[r] : p0[r][u - 1];
            Packet& s1 = u == 0 ? c1[r] : p1[r][u - 1];
            s0 = pmadd(ar, b0, s0);
            if constexpr (!Half) s1 = pmadd(ar, b1, s1);
          }
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        c0[r] = padd(padd(c0[r], p0[r][0]), padd(p0[r][1], p0[r][2]));
        if constexpr (!Half) c1[r] = padd(padd(c1[r], p1[r][0]), padd(p1[r][1], p1[r][2]));
      }
    }
    for (; k < K; ++k) {
      if constexpr (Prefetch) prefetch_row(pf + k * NR);
      const Packet b0 = ploadu<Packet>(panel + k * ldb), b1 = Half ? b0 : ploadu<Packet>(panel + k * ldb + PS);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const Packet ar = pset1<Packet>(a_at(k, r));
        c0[r] = pmadd(ar, b0, c0[r]);
        if constexpr (!Half) c1[r] = pmadd(ar, b1, c1[r]);
      }
    }
    if (!Half && nc == NR) {
      if (Y) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          c0[r] = padd(c0[r], ploadu<Packet>(Y + r * ldy));
          c1[r] = padd(c1[r], ploadu<Packet>(Y + r * ldy + PS));
        }
      }
#pragma GCC unroll 16
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
      store_partial<R>(c0, c1, C, ldc, nc, accumulate, Y, ldy);
    }
  }

  template <int R>
  static EIGEN_DONT_INLINE void store_partial(const Packet* c0, const Packet* c1, S* C, Index ldc,
                                             Index nc, bool accumulate, const S* Y, Index ldy) {
    using namespace Eigen::internal;
    alignas(64) S tmp[NR];
    for (int r = 0; r < R; ++r) {
      pstoreu(tmp, c0[r]);
      pstoreu(tmp + PS, c1[r]);
      if (Y)
        for (Index j = 0; j < nc; ++j) tmp[j] += Y[r * ldy + j];
      S* c = C + r * ldc;
      for (Index j = 0; j < nc; ++j) c[j] = accumulate ? c[j] + tmp[j] : tmp[j];
    }
  }

  // pack_a / micro for a row count known at run time (≤ MR), dispatched to compile-time R.
  template <int R>
  static void pack_a_tail(Index rows, Index kc, const S* A, Index ars, Index aks, S* dst) {
    if constexpr (R > 0) {
      if (rows == R) pack_a<R>(kc, A, ars, aks, dst);
      else pack_a_tail<R - 1>(rows, kc, A, ars, aks, dst);
    }
  }

  // pf: the panel to prefetch while computing, or nullptr.
  template <int R, Sums Order, bool Direct>
  static EIGEN_ALWAYS_INLINE void micro_tail(Index rows, Index K, const S* Ap, Index lda, const S* panel, Index ldb, S* C,
                                             Index ldc, Index nc, bool accumulate, const S* Y,
                                             Index ldy, const S* pf) {
    if constexpr (R > 0) {
      if (rows != R) micro_tail<R - 1, Order, Direct>(rows, K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, pf);
      else if (pf) micro<R, true, Order, false, Direct>(K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, pf);
      else if (nc <= PS) micro<R, false, Order, true, Direct>(K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, nullptr);
      else micro<R, false, Order, false, Direct>(K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, nullptr);
    }
  }

  // micro_tail for a block of rows of at most MR, with the order of the sums known at run time.
  template <bool Direct>
  static EIGEN_ALWAYS_INLINE void micro_block(Sums sums, Index rows, Index K, const S* Ap, Index lda,
                                              const S* panel, Index ldb, S* C, Index ldc, Index nc, bool accumulate,
                                              const S* Y, Index ldy, const S* pf) {
    if (sums == Sums::Partial)
      micro_tail<MR, Sums::Partial, Direct>(rows, K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, pf);
    else
      micro_tail<MR, Sums::Sequential, Direct>(rows, K, Ap, lda, panel, ldb, C, ldc, nc, accumulate, Y, ldy, pf);
  }

  // C (M × N) = A (M × K) · B [+ Y], or C += A·B [+ Y] (Accumulate::Yes); Bp is B (K × N)
  // packed whole, every chunk by pack_chunk. C's rows are contiguous (C.cs = 1), and so
  // are Y's (Y.rs = 0 adds one row, a bias, to every row); Y, when its data is not null, is
  // added once. Per K chunk and chunk of at most kMc rows, the rows are packed into blocks of
  // ≤ MR, then every panel (kept in L1) meets every block. Walk::Backwards: walk a B larger
  // than L2 from its last chunk and panel to its first (a loop that multiplies the same B at
  // every step alternates the direction); a B that stays in L2 is always walked forwards.
  // ldb > 0: Bp is B itself, row-major with rows ldb apart and N a whole number of panels,
  // read where it lies (a panel is NR consecutive columns of every row: the values and their
  // order are those of the packed panel, so the sums are the same); ldb = 0: B packed.
  // b_row0 > 0 (packed B only): Bp holds b_row0 + K rows, and A's column k meets row b_row0 + k
  // (a product whose first rows of A are zeros leaves them out). The chunks are Bp's: the first
  // visited holds fewer rows, and each row's sum is the one over all rows with the zeros left out.
  static void run(const View& A, const S* Bp, const OutView& C, Accumulate accumulate_c,
                  const View& Y = {}, Walk walk = Walk::Forwards, Sums sums = Sums::Partial, Index ldb = 0,
                  Index b_row0 = 0) {
    eigen_assert(C.cs == 1 && Y.cs == 1 && A.rows == C.rows && (!Y.data || Y.cols == C.cols));
    eigen_assert(ldb == 0 || C.cols % NR == 0);
    eigen_assert(b_row0 == 0 || ldb == 0);
    const Index M = A.rows, N = C.cols, K = A.cols, ars = A.rs, aks = A.cs, ldc = C.rs, ldy = Y.rs;
    const bool accumulate = accumulate_c == Accumulate::Yes, backwards = walk == Walk::Backwards;
    constexpr Index kMc = kRows;  // rows packed at a time: one run_parallel tile
    thread_local std::vector<S> packed;
    // Bp's rows (Kp) and the chunks that hold the rows read, [c_first, c_first + nchunks).
    const Index Kp = b_row0 + K, c_first = b_row0 / kKc;
    const Index npanels = (N + NR - 1) / NR, nchunks = K == 0 ? 0 : num_chunks(Kp) - c_first;
    // B larger than L2 streams from memory on every call: then each panel's first row block
    // prefetches the next panel, so the loads overlap the arithmetic. A B that stays in L2
    // between calls (a small recurrent matrix) needs no prefetch.
    const bool stream = K * npanels * NR * Index(sizeof(S)) > kStreamBytes;
    const bool rev = backwards && stream;
    const Index panel_ld = ldb ? ldb : NR;  // values between a panel's rows
    // Packing a block of A's rows costs about as much as multiplying it by one or two panels:
    // against few panels (at most kDirectPanels), rows whose values lie side by side (aks = 1)
    // are read where they lie instead, unless they share L1 sets. Against many panels the
    // packed block, one contiguous stream, is faster to read.
    const bool direct = aks == 1 && npanels <= kDirectPanels && !rows_share_l1_sets(ars);
    for (Index m0 = 0; m0 < M; m0 += kMc) {
      const Index mc = std::min(kMc, M - m0);
      // Rows in ⌈mc/MR⌉ blocks of near-equal size (32 = 6+6+5+5+5+5, not 6·5+2): a block of
      // few rows has too few accumulators to keep the FMA units busy.
      const Index nblocks = (mc + MR - 1) / MR, small = mc / nblocks, nbig = mc % nblocks;
      if (Index(packed.size()) < mc * kKc) packed.resize(mc * kKc);
      for (Index ci = 0; ci < nchunks; ++ci) {  // the ci-th chunk visited
        // The chunk's rows of Bp [cs, cs + kp), of which rows [cs + skip, cs + kp) are read,
        // against A's columns [k0, k0 + kc).
        const Index cs = (c_first + (rev ? nchunks - 1 - ci : ci)) * kKc, kp = std::min(kKc, Kp - cs);
        const Index skip = std::max<Index>(0, b_row0 - cs), k0 = cs + skip - b_row0, kc = kp - skip;
        const bool acc = accumulate || ci > 0;
        const S* y = ci == 0 ? Y.data : nullptr;  // added with the first chunk visited only
        for (Index blk = 0, i = 0; blk < nblocks && !direct; ++blk) {
          const Index rows = small + (blk < nbig);
          pack_a_tail<MR>(rows, kc, A.data + (m0 + i) * ars + k0 * aks, ars, aks, packed.data() + i * kc);
          i += rows;
        }
        const S* chunk = ldb ? Bp + k0 * ldb : Bp + cs * npanels * NR;
        for (Index pi = 0; pi < npanels; ++pi) {  // the pi-th panel visited
          const Index p = rev ? npanels - 1 - pi : pi;
          const S* panel = ldb ? chunk + p * NR : chunk + (p * kp + skip) * NR;
          const Index j = p * NR, nc = std::min<Index>(NR, N - j);
          // The panel visited next: the neighbour in memory, or the next chunk's first
          // visited (its last panel when walking backwards; chunks before the last are full).
          const S* next = nullptr;
          if (pi + 1 < npanels) next = rev ? panel - kp * NR : panel + kp * NR;
          else if (ci + 1 < nchunks) next = rev ? chunk - kKc * NR : chunk + kp * npanels * NR;
          for (Index blk = 0, i = 0; blk < nblocks; ++blk) {
            const Index rows = small + (blk < nbig);
            S* c = C.data + (m0 + i) * ldc + j;
            const S* yj = y ? y + (m0 + i) * ldy + j : nullptr;
            // The first block fetches the next panel while it computes.
            const S* pf = blk == 0 && stream && !ldb ? next : nullptr;
            if (direct)
              micro_block<true>(sums, rows, kc, A.data + (m0 + i) * ars + k0, ars, panel, panel_ld, c, ldc, nc, acc, yj, ldy, pf);
            else
              micro_block<false>(sums, rows, kc, packed.data() + i * kc, 0, panel, panel_ld, c, ldc, nc, acc, yj, ldy, pf);
            i += rows;
          }
        }
      }
    }
  }

  // Row tiles of C for run_parallel: ⌈M / kRows⌉ tiles of near-equal height (640 rows: 4 of
  // 160, not 3 of 192 and one of 64, which would leave a thread idle for a third of the
  // product). A function of M only, as the results must not depend on threads.
  static Index row_tiles(Index M) { return (M + kRows - 1) / kRows; }
  static Index tile_rows(Index M) { return M == 0 ? 0 : (M + row_tiles(M) - 1) / row_tiles(M); }

  // The same product over fixed (tile_rows × cols) tiles of C in parallel, B packed by
  // pack_parallel with the same cols: A is read from L2 by one tile's panels, and the row
  // tiles do not depend on the thread count (the column tiles change no sum: any cols gives
  // the same bits).
  // rows_per_tile, when given, replaces tile_rows(M): a caller may cut the rows finer where that
  // changes no sum (every row block of at least three rows sums k after k: see matmul).
  // b_row0 as in run: Bp holds b_row0 + K rows, A's column k meets row b_row0 + k.
  static void run_parallel(const View& A, const S* Bp, Index cols, const OutView& C, Accumulate accumulate,
                           const View& Y = {}, Sums sums = Sums::Partial, Index rows_per_tile = 0,
                           Index b_row0 = 0) {
    const Index M = C.rows, N = C.cols, K = A.cols;
    const Index mr = rows_per_tile > 0 ? rows_per_tile : tile_rows(M), mt = (M + mr - 1) / mr;
    const Index nt = (N + cols - 1) / cols;
    parallel_for_tiles(mt * nt, [&](Index t) {
      const Index r0 = (t / nt) * mr, c0 = (t % nt) * cols;
      const Index m = std::min(mr, M - r0), n = std::min(cols, N - c0);
      run(A.block(r0, 0, m, K), Bp + c0 * (b_row0 + K), C.block(r0, c0, m, n), accumulate,
          Y.data ? Y.block(r0, c0, m, n) : View{}, Walk::Forwards, sums, 0, b_row0);
    });
  }
};

LSTMFAST_NAMESPACE_END  // lstmfast
