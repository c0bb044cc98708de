// dropout.cpp — inverted dropout on a counter-based random stream (see dropout.h).
#include "dropout.h"

#include <algorithm>
#include <cmath>

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

constexpr Index kBlock = Index(1) << 12;  // elements per tile of the kernels' threads

// MurmurHash3's 32-bit finaliser: a bijection of 32-bit words in which every input bit flips
// each output bit with probability about 1/2.
inline std::uint32_t fmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// The 32-bit draws of element indices [i0, i0 + m) (within one block of 2³²) for the key
// halves (k0, k1): h_i = fmix32(fmix32(i·φ + k0) ⊕ k1), φ = 2³²/golden ratio. Written as a
// plain loop over 32-bit words, which the compiler turns into vector code.
struct Keys {
  std::uint32_t k0, k1;
};

inline Keys block_keys(std::uint64_t key, std::uint64_t block) {
  // A block of 2³² elements past the first mixes its number into the key (splitmix64's step).
  std::uint64_t z = key + block * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return {static_cast<std::uint32_t>(z), static_cast<std::uint32_t>(z >> 32)};
}

// keep_i / (1 − rate) for i in [i0, i0 + m) (one tile, within one block of 2³² elements):
// 1/(1 − rate) where element i is kept (u_i ≥ rate), else 0. One vectorised loop: hash,
// compare, select.
template <typename S>
void tile_mask(std::uint64_t key, std::uint32_t threshold, S scale, Index i0, Index m, S* mask) {
  const Keys k = block_keys(key, static_cast<std::uint64_t>(i0) >> 32);
  const std::uint32_t base = static_cast<std::uint32_t>(i0);
  for (Index j = 0; j < m; ++j) {
    const std::uint32_t i = base + static_cast<std::uint32_t>(j);
    const std::uint32_t h = fmix32(fmix32(i * 0x9e3779b9u + k.k0) ^ k.k1);
    mask[j] = h >= threshold ? scale : S(0);
  }
}

// f(i0, m, mask) for every tile [i0, i0 + m) of [0, n) on the kernels' threads, mask holding
// that tile's keep / (1 − rate).
template <typename S, typename F>
void for_each_tile(Index n, double rate, std::uint64_t key, F&& f) {
  // keep ⇔ h ≥ threshold, threshold = ⌈rate · 2³²⌉ (rate < 1, so it fits 32 bits).
  const std::uint32_t threshold = static_cast<std::uint32_t>(std::ceil(rate * 4294967296.0));
  const S scale = static_cast<S>(1.0 / (1.0 - rate));
  parallel_for_tiles((n + kBlock - 1) / kBlock, [&](Index t) {
    const Index i0 = t * kBlock, m = std::min(kBlock, n - i0);
    alignas(64) S mask[kBlock];
    tile_mask(key, threshold, scale, i0, m, mask);
    f(i0, m, mask);
  });
}

}  // namespace

template <typename S>
void dropout(const S* x, Index n, double rate, std::uint64_t key, S* y) {
  for_each_tile<S>(n, rate, key, [&](Index i0, Index m, const S* mask) {
    const S* xi = x + i0;
    S* yi = y + i0;
    // y = x · keep / (1 − rate): a product, as Keras's x · mask (a dropped NaN stays NaN)
    for (Index j = 0; j < m; ++j) yi[j] = xi[j] * mask[j];
  });
}

template <typename S>
void dropout_mask(Index n, double rate, std::uint64_t key, S* mask) {
  for_each_tile<S>(n, rate, key, [&](Index i0, Index m, const S* tile) { std::copy(tile, tile + m, mask + i0); });
}

template void dropout<float>(const float*, Index, double, std::uint64_t, float*);
template void dropout<double>(const double*, Index, double, std::uint64_t, double*);
template void dropout_mask<float>(Index, double, std::uint64_t, float*);
template void dropout_mask<double>(Index, double, std::uint64_t, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
