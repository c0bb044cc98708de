// buffer.h — the kernels' working memory: aligned, backed by huge pages where Linux offers
// them, and recycled from call to call.
#pragma once

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

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

LSTMFAST_NAMESPACE_END  // lstmfast
