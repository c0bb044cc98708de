// activations.h — the LSTM's element-wise functions and their derivatives, vectorised by Eigen
// for the instruction set the including file is built for.
//
//   φ (Activation):           tanh | relu = max(z, 0) | sigmoid | linear = z
//   σ (RecurrentActivation):  sigmoid σ(z) = 1/(1 + e^{−z}) | hard_sigmoid = clip(z/6 + 1/2, 0, 1)
//
// Error against the exact functions (tests/test_ops_reference.py,
// test_vectorised_activations_stay_within_their_documented_error, x in [−20, 20]):
//   float:  tanh and sigmoid are Eigen's rational approximations (ptanh, plogistic): tanh within
//           2.6e-7 absolute (4.4 ulp), sigmoid within 1.5e-7 absolute, measured on the AVX2
//           build; the test allows 4e-7 and 2.5e-7 for the other builds. Both saturate exactly:
//           tanh stays in [−1, 1], sigmoid in [0, 1].
//           The LSTM cell's own σ and tanh (cell_sigmoid, cell_tanh) are the same approximations
//           with p/q taken as p·(1/q), 1/q a Newton-refined reciprocal estimate: sigmoid within
//           1.7e-7, 1.8e-7 and 2.4e-7 absolute and tanh within 3.2e-7, 3.4e-7 and 4.3e-7 (AVX-512,
//           AVX2 and baseline builds, x in [−20, 20] every 1e-5, against double), saturating
//           as exactly.
//   double: tanh is Eigen's, sigmoid the scalar formula 1/(1 + std::exp(−z)): both within 3 ulp.
//   relu, linear and hard_sigmoid are exact up to the rounding of z/6 + 1/2.
// Every function computes each element the same way wherever a buffer starts and whatever
// its length, so results stay bitwise reproducible.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "common.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

enum class Activation : int { Tanh = 0, Relu = 1, Sigmoid = 2, Linear = 3 };
enum class RecurrentActivation : int { Sigmoid = 0, HardSigmoid = 1 };

namespace activations {

// y = σ(z) over Eigen arrays. float: Eigen's vectorised logistic. double (used for gradient
// checks): the scalar formula, because Eigen's double packet and scalar paths differ by an
// ulp and the split between them follows buffer alignment, which would break bitwise
// reproducibility.
template <typename Dst, typename Src>
inline void sigmoid(Dst&& y, const Src& z) {
  using S = typename std::decay_t<Dst>::Scalar;
  if constexpr (std::is_same_v<S, float>) y = z.logistic();
  else y = z.unaryExpr([](S v) { return S(1) / (S(1) + std::exp(-v)); });
}

// y = φ(z) over Eigen arrays.
template <typename Dst, typename Src>
inline void activate(Activation a, Dst&& y, const Src& z) {
  using S = typename std::decay_t<Dst>::Scalar;
  switch (a) {
    case Activation::Tanh: y = z.tanh(); break;
    case Activation::Relu: y = z.cwiseMax(S(0)); break;
    case Activation::Sigmoid: sigmoid(y, z); break;
    case Activation::Linear: y = z; break;
  }
}

// y = σ(z) over Eigen arrays.
template <typename Dst, typename Src>
inline void activate(RecurrentActivation a, Dst&& y, const Src& z) {
  using S = typename std::decay_t<Dst>::Scalar;
  if (a == RecurrentActivation::Sigmoid) {
    sigmoid(y, z);
  } else {  // Keras 3 hard_sigmoid: relu6(z + 3) / 6 = clip(z/6 + 1/2, 0, 1)
    y = (z * S(1.0 / 6.0) + S(0.5)).cwiseMax(S(0)).cwiseMin(S(1));
  }
}

// y[0, n) = f(z[0, n), …) for a packet function f of one or more inputs (y may be one of
// them): packet by packet from wherever the rows start, the last n mod PS values in one
// zero-padded packet, so every value is computed the same way wherever it lies. Eigen's own loop
// over an unaligned row does its first values up to an aligned address and its last ones with
// the scalar tanh and logistic (and a scalar a·b + c·d may be fused into an FMA), which on short
// rows (gate blocks of a few packets and a remainder, H = 50) also cost as much as the rest.
template <typename S, typename F, typename... Z, std::size_t... I>
inline void packet_map_tail(S* y, Index j, Index n, F& f, std::index_sequence<I...>, const Z*... z) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<S>::type;
  alignas(64) S t[sizeof...(Z)][packet_traits<S>::size] = {};
  (std::copy(z + j, z + n, t[I]), ...);
  pstoreu(t[0], f(ploadu<Packet>(t[I])...));
  std::copy(t[0], t[0] + (n - j), y + j);
}

template <typename S, typename F, typename... Z>
inline void packet_map(S* y, Index n, F f, const Z*... z) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<S>::type;
  constexpr Index PS = packet_traits<S>::size;
  Index j = 0;
  for (; j + PS <= n; j += PS) pstoreu(y + j, f(ploadu<Packet>(z + j)...));
  if (j < n) packet_map_tail(y, j, n, f, std::index_sequence_for<Z...>(), z...);
}

// σ and d ⊙ σ'(z) = d ⊙ σ(1 − σ) (through y = σ(z)) on float packets: the sigmoid of both σ and
// φ, for with_packet_op and with_packet_derivative.
using FloatPacket = Eigen::internal::packet_traits<float>::type;
inline constexpr auto sigmoid_packet = [](const FloatPacket& p) {
  return Eigen::internal::scalar_logistic_op<float>().packetOp(p);
};
inline constexpr auto sigmoid_derivative_packet = [](const FloatPacket& d, const FloatPacket& y) {
  using namespace Eigen::internal;
  return pmul(d, pmul(y, psub(pset1<FloatPacket>(1.0f), y)));
};

// Calls f(op) with op the packet function of a: op(p) = a(p) for a float packet p, computed
// as activate() computes it. Each function is its own type, so a loop over packets inside f
// is compiled once per function instead of asking which at every packet.
template <typename F>
inline void with_packet_op(Activation a, F&& f) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<float>::type;
  switch (a) {
    case Activation::Tanh: f([](const Packet& p) { return scalar_tanh_op<float>().packetOp(p); }); return;
    case Activation::Relu: f([](const Packet& p) { return pmax(p, pzero(p)); }); return;
    case Activation::Sigmoid: f(sigmoid_packet); return;
    case Activation::Linear: f([](const Packet& p) { return p; }); return;
  }
}

template <typename F>
inline void with_packet_op(RecurrentActivation a, F&& f) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<float>::type;
  if (a == RecurrentActivation::Sigmoid) {
    f(sigmoid_packet);
  } else {  // clip(z/6 + 1/2, 0, 1), as activate() computes it
    f([](const Packet& p) {
      return pmin(pmax(padd(pmul(p, pset1<Packet>(1.0f / 6.0f)), pset1<Packet>(0.5f)), pzero(p)), pset1<Packet>(1.0f));
    });
  }
}

// y[0, n) = a(z[0, n)), a an Activation (φ) or a RecurrentActivation (σ); y may be z.
template <typename A, typename S>
inline void activate_span(A a, S* y, const S* z, Index n) {
  if constexpr (std::is_same_v<S, float>) {
    using namespace Eigen::internal;
    using Packet = typename packet_traits<S>::type;
    constexpr std::uintptr_t kPacketBytes = sizeof(Packet);
    if (n % packet_traits<S>::size == 0 && reinterpret_cast<std::uintptr_t>(y) % kPacketBytes == 0 &&
        reinterpret_cast<std::uintptr_t>(z) % kPacketBytes == 0) {
      // Whole packets from an aligned start: Eigen's loop has no scalar values to do (and
      // is a little faster on long rows); the same packet functions either way.
      activate(a, ArrMap<S>(y, n), CArrMap<S>(z, n));
      return;
    }
    if constexpr (std::is_same_v<A, Activation>) {
      if (a == Activation::Linear) {
        if (y != z) std::copy(z, z + n, y);
        return;
      }
    }
    with_packet_op(a, [&](auto op) { packet_map(y, n, op, z); });
  } else {
    activate(a, ArrMap<S>(y, n), CArrMap<S>(z, n));
  }
}

// 1/q for float packets of normal q > 0: the hardware's reciprocal estimate refined by one
// Newton step, r ← r·(2 − q·r), within about 1 ulp of the quotient (2⁻²⁸ relative from
// AVX-512's 14-bit estimate, 2⁻²⁴ from SSE's and AVX's 12-bit one). A packet division takes
// about ten cycles on one port; the LSTM cell needs five per unit.
inline FloatPacket preciprocal_newton(const FloatPacket& q) {
  using namespace Eigen::internal;
#if defined(__AVX512F__)
  const FloatPacket r = _mm512_rcp14_ps(q);
#elif defined(__AVX__)
  const FloatPacket r = _mm256_rcp_ps(q);
#else
  const FloatPacket r = _mm_rcp_ps(q);
#endif
  return pmul(r, psub(pset1<FloatPacket>(2.0f), pmul(q, r)));  // r·(2 − q·r)
}

// c[0]·x^{N−1} + c[1]·x^{N−2} + … + c[N−1] by Horner's rule, one FMA per coefficient after the
// first (the order Eigen's approximations evaluate their polynomials in, in x² for them).
template <std::size_t N>
inline FloatPacket polynomial(const FloatPacket& x, const float (&c)[N]) {
  using namespace Eigen::internal;
  FloatPacket p = pset1<FloatPacket>(c[0]);
  for (std::size_t i = 1; i < N; ++i) p = pmadd(x, p, pset1<FloatPacket>(c[i]));
  return p;
}

// σ(x) = 1/2 + p(x)/q(x) and tanh(x) = p(x)/q(x): Eigen's rational approximations
// (scalar_logistic_op<float>, generic_fast_tanh_float), their coefficients and cut-offs, with
// p/q taken as p·(1/q) through preciprocal_newton. The LSTM cell's σ and φ = tanh.
inline FloatPacket cell_sigmoid(const FloatPacket& z) {
  using namespace Eigen::internal;
  const FloatPacket small = pcmp_lt(z, pset1<FloatPacket>(-9.0f));  // below: σ(x) ≈ eˣ
#ifdef EIGEN_VECTORIZE_FMA
  const FloatPacket x = pmin(z, pset1<FloatPacket>(15.7243833541870117f));
#else
  const FloatPacket x = pmin(z, pset1<FloatPacket>(15.6437711715698242f));
#endif
  const FloatPacket x2 = pmul(x, x);
  // p odd of degree 9, q even of degree 10
  const FloatPacket p = pmul(x, polynomial(x2, {4.37031012579801e-11f, 1.15627324459942e-07f, 6.08574864600143e-05f,
                                                8.51377133304701e-03f, 2.48287947061529e-01f}));
  const FloatPacket q = polynomial(x2, {6.10247389755681e-13f, 5.76102136993427e-09f, 6.29106785017040e-06f,
                                        1.70198817374094e-03f, 1.16817656904453e-01f, 9.93151921023180e-01f});
  const FloatPacket y = padd(pmul(p, preciprocal_newton(q)), pset1<FloatPacket>(0.5f));  // 1/2 + p/q
  if (EIGEN_PREDICT_FALSE(predux_any(small))) return pselect(small, pexp(z), y);
  return y;
}

inline FloatPacket cell_tanh(const FloatPacket& z) {
  using namespace Eigen::internal;
#ifdef EIGEN_VECTORIZE_FMA
  const FloatPacket clamp = pset1<FloatPacket>(7.99881172180175781f);
#else
  const FloatPacket clamp = pset1<FloatPacket>(7.90531110763549805f);
#endif
  const FloatPacket x = pmax(pmin(z, clamp), pnegate(clamp));
  const FloatPacket tiny = pcmp_lt(pabs(z), pset1<FloatPacket>(0.0004f));  // below: tanh(x) ≈ x
  const FloatPacket x2 = pmul(x, x);
  // p odd of degree 13, q even of degree 6
  const FloatPacket p = pmul(x, polynomial(x2, {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                                                5.12229709037114e-08f, 1.48572235717979e-05f, 6.37261928875436e-04f,
                                                4.89352455891786e-03f}));
  const FloatPacket q = polynomial(x2, {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f,
                                        4.89352518554385e-03f});
  return pselect(tiny, x, pmul(p, preciprocal_newton(q)));  // p/q
}

// with_packet_op for the LSTM cell: σ and tanh as cell_sigmoid and cell_tanh, the others as
// with_packet_op has them.
template <typename F>
inline void with_cell_op(Activation a, F&& f) {
  if (a == Activation::Tanh) f([](const FloatPacket& p) { return cell_tanh(p); });
  else if (a == Activation::Sigmoid) f([](const FloatPacket& p) { return cell_sigmoid(p); });
  else with_packet_op(a, std::forward<F>(f));
}

template <typename F>
inline void with_cell_op(RecurrentActivation a, F&& f) {
  if (a == RecurrentActivation::Sigmoid) f([](const FloatPacket& p) { return cell_sigmoid(p); });
  else with_packet_op(a, std::forward<F>(f));
}

// Calls f(op) with op(d, y) = d ⊙ a'(z) for float packets, written through y = a(z) and
// computed as mul_derivative() computes it (with_packet_op's counterpart for the backward).
template <typename F>
inline void with_packet_derivative(Activation a, F&& f) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<float>::type;
  switch (a) {
    case Activation::Tanh:  // 1 − tanh²
      f([](const Packet& d, const Packet& y) { return pmul(d, psub(pset1<Packet>(1.0f), pmul(y, y))); });
      return;
    case Activation::Relu:  // [z > 0]
      f([](const Packet& d, const Packet& y) { return pselect(pcmp_lt(pzero(y), y), d, pzero(d)); });
      return;
    case Activation::Sigmoid: f(sigmoid_derivative_packet); return;  // σ(1 − σ)
    case Activation::Linear: f([](const Packet& d, const Packet&) { return d; }); return;
  }
}

template <typename F>
inline void with_packet_derivative(RecurrentActivation a, F&& f) {
  using namespace Eigen::internal;
  using Packet = typename packet_traits<float>::type;
  if (a == RecurrentActivation::Sigmoid) {  // σ(1 − σ)
    f(sigmoid_derivative_packet);
  } else {  // slope 1/6 strictly inside the ramp, 0 on the clipped parts
    f([](const Packet& d, const Packet& y) {
      const Packet inside = pand(pcmp_lt(pzero(y), y), pcmp_lt(y, pset1<Packet>(1.0f)));
      return pselect(inside, pmul(d, pset1<Packet>(1.0f / 6.0f)), pzero(d));
    });
  }
}

// d ⊙= φ'(z), written through y = φ(z).
template <typename D, typename Y>
inline void mul_derivative(Activation a, D&& d, const Y& y) {
  using S = typename std::decay_t<D>::Scalar;
  switch (a) {
    case Activation::Tanh: d *= S(1) - y.square(); break;                   // 1 − tanh²
    case Activation::Relu: d = (y > S(0)).select(d, S(0)); break;          // [z > 0]
    case Activation::Sigmoid: d *= y * (S(1) - y); break;                  // σ(1 − σ)
    case Activation::Linear: break;
  }
}

// d ⊙= σ'(z), written through y = σ(z).
template <typename D, typename Y>
inline void mul_derivative(RecurrentActivation a, D&& d, const Y& y) {
  using S = typename std::decay_t<D>::Scalar;
  if (a == RecurrentActivation::Sigmoid) {
    d *= y * (S(1) - y);                                                    // σ(1 − σ)
  } else {  // slope 1/6 strictly inside the ramp, 0 on the clipped parts
    d = ((y > S(0)) && (y < S(1))).select(d * S(1.0 / 6.0), S(0));
  }
}

}  // namespace activations
LSTMFAST_NAMESPACE_END  // lstmfast
