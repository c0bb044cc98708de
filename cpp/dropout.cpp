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

// The two 32-bit halves (k0, k1) of the key of one block of 2³² elements.
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

// What every draw is compared with and scaled by: keep ⇔ h ≥ threshold, threshold =
// ⌈rate · 2³²⌉ (rate < 1, so it fits 32 bits); a kept value is multiplied by 1/(1 − rate).
template <typename S>
struct Keep {
  std::uint32_t threshold;
  S scale;
  explicit Keep(double rate)
      : threshold(static_cast<std::uint32_t>(std::ceil(rate * 4294967296.0))),
        scale(static_cast<S>(1.0 / (1.0 - rate))) {}
};

// mask[j] = keep_{i0+j} / (1 − rate) for j in [0, m) (one tile, within one block of 2³²
// elements): 1/(1 − rate) where element i = i0 + j is kept, else 0. Its draw is
//   h_i = fmix32(fmix32(i·φ + k0) ⊕ k1),  φ = 2³²/golden ratio,  kept ⇔ h_i ≥ threshold,
// one plain loop over 32-bit words (hash, compare, select) that the compiler vectorises.
template <typename S>
void tile_mask(std::uint64_t key, Keep<S> keep, Index i0, Index m, S* mask) {
  const Keys k = block_keys(key, static_cast<std::uint64_t>(i0) >> 32);
  const std::uint32_t base = static_cast<std::uint32_t>(i0);
  // In locals: read through a struct inside the select, the scale would count as a load that
  // only some lanes make, and the loop would not be vectorised.
  const std::uint32_t threshold = keep.threshold;
  const S scale = keep.scale;
  for (Index j = 0; j < m; ++j) {
    const std::uint32_t i = base + static_cast<std::uint32_t>(j);
    const std::uint32_t h = fmix32(fmix32(i * 0x9e3779b9u + k.k0) ^ k.k1);
    mask[j] = h >= threshold ? scale : S(0);
  }
}

// f(i0, m) for every tile [i0, i0 + m) of [0, n), on the kernels' threads.
template <typename F>
void for_each_tile(Index n, F&& f) {
  parallel_for_tiles((n + kBlock - 1) / kBlock, [&](Index t) { f(t * kBlock, std::min(kBlock, n - t * kBlock)); });
}

}  // namespace

template <typename S>
void dropout(const S* x, Index n, double rate, std::uint64_t key, S* y) {
  const Keep<S> keep(rate);
  for_each_tile(n, [&](Index i0, Index m) {
    alignas(64) S mask[kBlock];
    tile_mask(key, keep, i0, m, mask);
    const S* xi = x + i0;
    S* yi = y + i0;
    // y = x · keep / (1 − rate): a product, as Keras's x · mask (a dropped NaN stays NaN)
    for (Index j = 0; j < m; ++j) yi[j] = xi[j] * mask[j];
  });
}

template <typename S>
void dropout_mask(Index n, double rate, std::uint64_t key, S* mask) {
  const Keep<S> keep(rate);
  for_each_tile(n, [&](Index i0, Index m) { tile_mask(key, keep, i0, m, mask + i0); });
}

template void dropout<float>(const float*, Index, double, std::uint64_t, float*);
template void dropout<double>(const double*, Index, double, std::uint64_t, double*);
template void dropout_mask<float>(Index, double, std::uint64_t, float*);
template void dropout_mask<double>(Index, double, std::uint64_t, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
