// common.h — shared pieces of the lstmfast kernels: Eigen aliases, the thread count, the
// floating-point guard that flushes denormals inside a kernel, and the parallel loop over
// fixed tiles.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>
#include <xmmintrin.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

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

// The thread team (common.cpp). set_num_threads(n) sets n (from Python; default: the physical
// cores); num_threads() is the team a kernel runs on now: n, or fewer under the adaptive policy
// while other processes contend for the cores; max_threads() is n.
int num_threads();
int max_threads();
int threads_in_use();  // the current team, without looking at the machine
void set_num_threads(int n);
void set_adaptive_threads(bool on);
bool adaptive_threads();
// The adaptive policy's rule: the team after a window with run-queue wait fraction `contention`
// and `idle_cores` idle cores (< 0: not known).
int next_team_size(int used, int set, double contention, double idle_cores);
// (contention, idle cores) of the last window, −1 where not known.
std::pair<double, double> thread_policy_readings();

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

// How parallel_for_tiles shares the tiles out: one at a time to whichever thread asks
// (Dynamic), or one contiguous run per thread, thread i the i-th (Runs). Runs suit kernels over
// a batch's rows: each thread then reads the rows it wrote in the kernel before, still in its
// core's cache (the LSTM's time loop gives thread i batch tile i).
enum class Share : bool { Dynamic = false, Runs = true };

// Runs f(tile) for tiles 0..n-1 on up to num_threads() threads, each under a DenormalGuard.
// Work is split into fixed tiles that do not depend on the thread count, so results are
// bitwise identical whatever the number of threads.
template <typename F>
void parallel_for_tiles(Index n, F&& f, Share share = Share::Dynamic) {
  const int nt = static_cast<int>(std::min<Index>(num_threads(), n));
  if (nt <= 1) {
    DenormalGuard guard;
    for (Index k = 0; k < n; ++k) f(k);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    DenormalGuard guard;
    if (share == Share::Runs) {
      const Index t = omp_get_thread_num(), m = omp_get_num_threads();
      for (Index k = n * t / m; k < n * (t + 1) / m; ++k) f(k);
    } else {
#pragma omp for schedule(dynamic, 1)
      for (Index k = 0; k < n; ++k) f(k);
    }
  }
}

// parallel_for_tiles with Share::Runs.
template <typename F>
void parallel_for_runs(Index n, F&& f) {
  parallel_for_tiles(n, std::forward<F>(f), Share::Runs);
}

// True when every flag is set (per-piece results of a parallel pass).
inline bool all_set(const std::vector<char>& flags) {
  return std::all_of(flags.begin(), flags.end(), [](char f) { return f != 0; });
}

// True when no value of p[0, n) is NaN or ±inf. x·0 is 0 for a finite x and NaN otherwise,
// so the sum of x·0 over a block is 0 exactly when the block is finite: one pass at memory
// speed without a temporary, large arrays in fixed blocks on all threads.
template <typename S>
bool all_finite(const S* p, Index n) {
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  constexpr Index PS = Eigen::internal::packet_traits<S>::size;
  constexpr Index kBlock = Index(1) << 14;
  const Index nb = (n + kBlock - 1) / kBlock;
  std::vector<char> finite(nb);
  auto check = [&](Index b) {
    using namespace Eigen::internal;
    const S* q = p + b * kBlock;
    const Index m = std::min(kBlock, n - b * kBlock);
    const Packet zero = pzero(Packet());
    Packet a0 = zero, a1 = zero, a2 = zero, a3 = zero;
    Index i = 0;
    for (; i + 4 * PS <= m; i += 4 * PS) {
      a0 = pmadd(ploadu<Packet>(q + i), zero, a0);
      a1 = pmadd(ploadu<Packet>(q + i + PS), zero, a1);
      a2 = pmadd(ploadu<Packet>(q + i + 2 * PS), zero, a2);
      a3 = pmadd(ploadu<Packet>(q + i + 3 * PS), zero, a3);
    }
    S sum = predux(padd(padd(a0, a1), padd(a2, a3)));
    for (; i < m; ++i) sum += q[i] * S(0);
    finite[b] = sum == S(0);
  };
  if (nb < 4) {
    for (Index b = 0; b < nb; ++b) check(b);
  } else {
    parallel_for_tiles(nb, check);
  }
  return all_set(finite);
}

LSTMFAST_NAMESPACE_END  // lstmfast
