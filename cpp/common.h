// common.h — shared pieces of the lstmfast kernels: Eigen aliases, the thread count,
// and the floating-point guard that flushes denormals inside a kernel.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>
#include <xmmintrin.h>

#ifdef __linux__
#include <sys/mman.h>
#endif

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

// Memory of the kernels' buffers: 64-byte aligned, and blocks of 2 MiB or more 2 MiB-aligned
// and backed by huge pages where Linux offers them on request (transparent huge pages in
// "madvise" mode, the usual default). Packed weights and pre-activations are streamed through
// again and again: with 2 MiB pages that costs one TLB entry per 2 MiB instead of one per
// 4 KiB, and the hardware prefetchers, which stop at page boundaries, run on.
template <typename S>
struct BufferAllocator {
  using value_type = S;
  static constexpr size_t kHuge = size_t(1) << 21;
  BufferAllocator() = default;
  template <typename U>
  BufferAllocator(const BufferAllocator<U>&) {}
  S* allocate(size_t n) {
    const size_t bytes = n * sizeof(S);
    const size_t align = bytes >= kHuge ? kHuge : 64;
    void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHuge) madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE);  // a hint
#endif
    return static_cast<S*>(p);
  }
  void deallocate(S* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const BufferAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const BufferAllocator<U>&) const { return false; }
};

// A kernel buffer whose storage is recycled: freeing one returns its memory to a small pool
// that the next call takes from, so that a training loop does not page-fault fresh memory
// in every step. Contents are unspecified on allocation; every user writes before reading.
template <typename S>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(Index n) { reset(n); }
  Buffer(Buffer&& o) noexcept : v_(std::move(o.v_)), n_(o.n_) { o.n_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      v_ = std::move(o.v_);
      n_ = o.n_;
      o.n_ = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  void reset(Index n) {
    if (n <= static_cast<Index>(v_.size())) {
      n_ = n;
      return;
    }
    release();
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    auto best = p.free.end();  // the smallest free buffer that is large enough
    for (auto it = p.free.begin(); it != p.free.end(); ++it)
      if (static_cast<Index>(it->size()) >= n && (best == p.free.end() || it->size() < best->size())) best = it;
    if (best != p.free.end()) {
      v_ = std::move(*best);
      p.bytes -= v_.size() * sizeof(S);
      p.free.erase(best);
    } else {
      v_ = std::vector<S, BufferAllocator<S>>(n);
    }
    n_ = n;
  }
  S* data() { return v_.data(); }
  const S* data() const { return v_.data(); }
  Index size() const { return n_; }
  bool empty() const { return n_ == 0; }
  S& operator[](Index i) { return v_[i]; }
  const S& operator[](Index i) const { return v_[i]; }

 private:
  struct Pool {
    std::mutex mutex;
    std::vector<std::vector<S, BufferAllocator<S>>> free;
    size_t bytes = 0;
  };
  static constexpr size_t kMaxBuffers = 24, kMaxBytes = size_t(1) << 30;
  static Pool& pool() {
    static Pool* p = new Pool();  // never destroyed: buffers may be freed at interpreter exit
    return *p;
  }
  void release() {
    if (v_.empty()) return;
    Pool& p = pool();
    const size_t bytes = v_.size() * sizeof(S);
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.free.size() < kMaxBuffers && p.bytes + bytes <= kMaxBytes) {
      p.bytes += bytes;
      p.free.push_back(std::move(v_));
    }
    v_ = std::vector<S, BufferAllocator<S>>();
    n_ = 0;
  }

  std::vector<S, BufferAllocator<S>> v_;
  Index n_ = 0;
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
  constexpr Index kBlock = Index(1) << 16;
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

}  // namespace lstmfast
