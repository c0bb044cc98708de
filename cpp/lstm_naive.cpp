// lstm_naive.cpp — the naive reference forward: one sample, one step, one unit after another,
// straight from the equations of lstm.h with std:: functions. Never optimised; the fast path
// (lstm.cpp) is tested against it.
//
// Dimensions: B batch, T time steps, D input features, H units, G = 4H gate columns.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lstm.h"

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

// x (B, T, D) or (B, D) constant; W (D, 4H), U (H, 4H), b (4H) in Keras's gate order;
// outputs (B, T, H) or (B, H); h_T, c_T (B, H).
template <typename S>
void lstm_forward_naive(const LSTMConfig& cfg, const LSTMInputs<S>& in, S* outputs, S* h_T,
                        S* c_T) {
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H, G = kNumGates * H;
  auto phi = [&](S z) -> S {
    switch (cfg.activation) {
      case Activation::Tanh: return std::tanh(z);
      case Activation::Relu: return z > 0 ? z : S(0);
      case Activation::Sigmoid: return S(1) / (S(1) + std::exp(-z));
      default: return z;
    }
  };
  auto sigma = [&](S z) -> S {
    if (cfg.recurrent_activation == RecurrentActivation::Sigmoid) return S(1) / (S(1) + std::exp(-z));
    return std::min(S(1), std::max(S(0), z / S(6) + S(0.5)));
  };
  std::vector<S> h(B * H, S(0)), c(B * H, S(0)), hn(H), cn(H), z(G);
  if (in.h0) std::copy(in.h0, in.h0 + B * H, h.begin());
  if (in.c0) std::copy(in.c0, in.c0 + B * H, c.begin());
  for (Index b = 0; b < B; ++b) {
    S* hb = h.data() + b * H;
    S* cb = c.data() + b * H;
    bool seen_real = false;
    for (Index s = 0; s < T; ++s) {
      const Index t = cfg.go_backwards ? T - 1 - s : s;
      const bool real = !in.mask || in.mask[b * T + t];
      if (real) {
        for (Index j = 0; j < G; ++j) {  // z = (x_t⊙m_x)·W + (h_{t−1}⊙m_h)·U + b
          S acc = in.bias ? in.bias[j] : S(0);
          for (Index d = 0; d < D; ++d) {
            const S x_btd = cfg.constant_input ? in.x[b * D + d] : in.x[(b * T + t) * D + d];
            const S xd = x_btd * (in.input_dropout ? in.input_dropout[b * D + d] : S(1));
            acc += xd * in.kernel[d * G + j];
          }
          for (Index u = 0; u < H; ++u) {
            const S hu = hb[u] * (in.recurrent_dropout ? in.recurrent_dropout[b * H + u] : S(1));
            acc += hu * in.recurrent_kernel[u * G + j];
          }
          z[j] = acc;
        }
        for (Index u = 0; u < H; ++u) {
          const S i = sigma(z[kGateI * H + u]), f = sigma(z[kGateF * H + u]);
          const S g = phi(z[kGateC * H + u]), o = sigma(z[kGateO * H + u]);
          cn[u] = f * cb[u] + i * g;  // c_t = f⊙c_{t−1} + i⊙g
          hn[u] = o * phi(cn[u]);     // h_t = o⊙φ(c_t)
        }
        std::copy(cn.begin(), cn.end(), cb);
        std::copy(hn.begin(), hn.end(), hb);
      }
      seen_real = seen_real || real;
      const bool zero = !real && (cfg.zero_output_for_mask || !seen_real);
      if (cfg.return_sequences || s == T - 1) {
        S* out = cfg.return_sequences ? outputs + (b * T + s) * H : outputs + b * H;
        for (Index u = 0; u < H; ++u) out[u] = zero ? S(0) : hb[u];
      }
    }
  }
  std::copy(h.begin(), h.end(), h_T);
  std::copy(c.begin(), c.end(), c_T);
}

template void lstm_forward_naive<float>(const LSTMConfig&, const LSTMInputs<float>&, float*, float*, float*);
template void lstm_forward_naive<double>(const LSTMConfig&, const LSTMInputs<double>&, double*, double*, double*);

LSTMFAST_NAMESPACE_END  // lstmfast
