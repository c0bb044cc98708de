// bindings.cpp — the only file that knows Python: numpy arrays in, numpy arrays out.
// lstmfast/ops.py checks shapes, dtypes and contiguity with user-facing messages before it
// calls here; these bindings re-check sizes so that no call can read out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>

#include "adam.h"
#include "attention.h"
#include "arrays.h"
#include "dropout.h"
#include "embedding.h"
#include "lstm.h"
#include "matmul.h"
#include "softmax.h"
#include "cpu.h"

namespace py = pybind11;
using namespace lstmfast;

namespace {

template <typename S>
using Arr = py::array_t<S, py::array::c_style>;
using Mask = py::array_t<uint8_t, py::array::c_style>;

// The activations as the kernels number them (ops.ACTIVATIONS, ops.RECURRENT_ACTIVATIONS).
std::pair<Activation, RecurrentActivation> activation_codes(int activation, int recurrent_activation) {
  if (activation < 0 || activation > 3 || recurrent_activation < 0 || recurrent_activation > 1)
    throw std::invalid_argument("activation code must be 0-3 (tanh, relu, sigmoid, linear) and recurrent_activation "
                                "code 0-1 (sigmoid, hard_sigmoid); got " + std::to_string(activation) + " and " +
                                std::to_string(recurrent_activation));
  return {static_cast<Activation>(activation), static_cast<RecurrentActivation>(recurrent_activation)};
}

template <typename A>
void expect_shape(const char* name, const A& a, std::initializer_list<Index> shape) {
  bool ok = static_cast<size_t>(a.ndim()) == shape.size();
  std::string want = "(", got = "(";
  size_t d = 0;
  for (Index s : shape) {
    want += std::to_string(s) + (d + 1 < shape.size() ? ", " : ")");
    if (ok && a.shape(d) != s) ok = false;
    ++d;
  }
  for (py::ssize_t i = 0; i < a.ndim(); ++i) got += std::to_string(a.shape(i)) + (i + 1 < a.ndim() ? ", " : "");
  got += ")";
  if (!ok) throw std::invalid_argument(std::string(name) + " must have shape " + want + ", got " + got);
}

template <typename S>
const S* opt_ptr(const std::optional<Arr<S>>& a) { return a ? a->data() : nullptr; }

template <typename S>
py::tuple forward(const Arr<S>& x, const Arr<S>& kernel, const Arr<S>& recurrent_kernel,
                  const std::optional<Arr<S>>& bias, const std::optional<Arr<S>>& h0,
                  const std::optional<Arr<S>>& c0, const std::optional<Mask>& mask,
                  const std::optional<Arr<S>>& input_dropout,
                  const std::optional<Arr<S>>& recurrent_dropout, int activation,
                  int recurrent_activation, bool go_backwards, bool return_sequences,
                  bool zero_output_for_mask, bool training, bool naive, Index timesteps,
                  const LSTMPackedWeights<S>* packed, bool check_weights, bool input_gradient) {
  // x (B, T, D); or (B, D) with timesteps = T: the same input at every step.
  LSTMConfig cfg;
  cfg.constant_input = timesteps > 0;
  const py::ssize_t rank = cfg.constant_input ? 2 : 3;
  if (x.ndim() != rank)
    throw std::invalid_argument(std::string("x must be ") +
                                (cfg.constant_input ? "2-D (batch, features) with timesteps"
                                                    : "3-D (batch, timesteps, features)") +
                                "; got " + std::to_string(x.ndim()) + "-D");
  cfg.B = x.shape(0);
  cfg.T = cfg.constant_input ? timesteps : x.shape(1);
  cfg.D = x.shape(rank - 1);
  cfg.H = recurrent_kernel.ndim() == 2 ? recurrent_kernel.shape(0) : -1;
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H;
  if (B < 1 || T < 1 || D < 1 || H < 1) throw std::invalid_argument("empty LSTM input or weights");
  expect_shape("kernel", kernel, {D, 4 * H});
  expect_shape("recurrent_kernel", recurrent_kernel, {H, 4 * H});
  if (bias) expect_shape("bias", *bias, {4 * H});
  // Packed weights come with their own copy of the weights as kernel, recurrent_kernel, bias.
  if (packed && (packed->kernel.data() != kernel.data() ||
                 packed->recurrent_kernel.data() != recurrent_kernel.data() ||
                 packed->has_bias != bool(bias) || (bias && packed->bias.data() != bias->data())))
    throw std::invalid_argument("packed weights must come with their own kernel, recurrent_kernel and bias");
  if (h0) expect_shape("h0", *h0, {B, H});
  if (c0) expect_shape("c0", *c0, {B, H});
  if (mask) expect_shape("mask", *mask, {B, T});
  if (input_dropout) expect_shape("input_dropout_mask", *input_dropout, {B, D});
  if (recurrent_dropout) expect_shape("recurrent_dropout_mask", *recurrent_dropout, {B, H});
  std::tie(cfg.activation, cfg.recurrent_activation) = activation_codes(activation, recurrent_activation);
  cfg.go_backwards = go_backwards;
  cfg.return_sequences = return_sequences;
  cfg.zero_output_for_mask = zero_output_for_mask;

  LSTMInputs<S> in;
  in.x = x.data();
  in.kernel = kernel.data();
  in.recurrent_kernel = recurrent_kernel.data();
  in.bias = opt_ptr(bias);
  in.h0 = opt_ptr(h0);
  in.c0 = opt_ptr(c0);
  in.mask = mask ? mask->data() : nullptr;
  in.input_dropout = opt_ptr(input_dropout);
  in.recurrent_dropout = opt_ptr(recurrent_dropout);
  in.packed = packed;
  in.check_weights = check_weights && !naive;
  in.input_gradient = input_gradient;
  // One-hot inputs (characters or words as unit vectors, as Keras's seq2seq examples feed
  // them): the kernel picks rows of W instead of multiplying by x. Few features: the product
  // is cheap either way.
  std::vector<int32_t> ids;
  if (!naive && !cfg.constant_input && !input_dropout && D >= kOneHotMinFeatures &&
      one_hot_rows(x.data(), B * T, D, ids))
    in.ids = ids.data();

  Arr<S> out = return_sequences ? Arr<S>({B, T, H}) : Arr<S>({B, H});
  Arr<S> hT({B, H}), cT({B, H});
  std::unique_ptr<LSTMCache<S>> cache(training ? new LSTMCache<S>() : nullptr);
  {
    // The kernel touches no Python object: let other Python threads run meanwhile.
    py::gil_scoped_release release;
    if (naive) lstm_forward_naive(cfg, in, out.mutable_data(), hT.mutable_data(), cT.mutable_data());
    else lstm_forward(cfg, in, out.mutable_data(), hT.mutable_data(), cT.mutable_data(), cache.get());
  }
  py::object c = cache ? py::cast(std::move(cache)) : py::none();
  return py::make_tuple(out, hT, cT, c);
}

template <typename S>
std::unique_ptr<LSTMPackedWeights<S>> pack_weights(const Arr<S>& kernel, const Arr<S>& recurrent_kernel,
                                                   const std::optional<Arr<S>>& bias) {
  const Index H = recurrent_kernel.ndim() == 2 ? recurrent_kernel.shape(0) : -1;
  const Index D = kernel.ndim() == 2 ? kernel.shape(0) : -1;
  if (D < 1 || H < 1)
    throw std::invalid_argument("kernel (D, 4H) and recurrent_kernel (H, 4H) must be non-empty 2-D arrays; got " +
                                std::to_string(kernel.ndim()) + "-D and " + std::to_string(recurrent_kernel.ndim()) +
                                "-D");
  expect_shape("kernel", kernel, {D, 4 * H});
  expect_shape("recurrent_kernel", recurrent_kernel, {H, 4 * H});
  if (bias) expect_shape("bias", *bias, {4 * H});
  const S *W = kernel.data(), *U = recurrent_kernel.data(), *b = opt_ptr(bias);
  py::gil_scoped_release release;
  return std::make_unique<LSTMPackedWeights<S>>(D, H, W, U, b);
}

// A read-only array over one of the packed weights' copies, keeping them alive.
template <typename S>
py::array copy_view(const LSTMPackedWeights<S>& p, const std::vector<S>& v, std::vector<py::ssize_t> shape) {
  py::array a(py::dtype::of<S>(), shape, {}, v.data(), py::cast(p, py::return_value_policy::reference));
  a.attr("flags").attr("writeable") = false;
  return a;
}

template <typename S>
py::tuple backward(LSTMCache<S>& cache, const std::optional<Arr<S>>& d_outputs,
                   const std::optional<Arr<S>>& d_h, const std::optional<Arr<S>>& d_c,
                   bool input_gradient, bool initial_state_gradient, const std::optional<Arr<S>>& out_kernel,
                   const std::optional<Arr<S>>& out_recurrent_kernel, const std::optional<Arr<S>>& out_bias,
                   const std::optional<Arr<S>>& kernel) {
  const LSTMConfig& cfg = cache.cfg;
  const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H;
  // dX = dZ·Wᵀ needs Wᵀ: kept by the forward, or packed now from the forward's kernel.
  if (input_gradient && cache.WT_panels.empty()) {
    if (!kernel)
      throw std::invalid_argument("input_gradient: this cache's forward was run with input_gradient=False and "
                                  "kept no transposed kernel; pass the forward's kernel (" + std::to_string(D) +
                                  ", " + std::to_string(4 * H) + ") to compute dx");
    expect_shape("kernel", *kernel, {D, 4 * H});
    const S* W = kernel->data();
    py::gil_scoped_release release;
    pack_input_transposed(cache, W);
  }
  if (d_outputs) {
    if (cfg.return_sequences) expect_shape("d_outputs", *d_outputs, {B, T, H});
    else expect_shape("d_outputs", *d_outputs, {B, H});
  }
  if (d_h) expect_shape("d_h", *d_h, {B, H});
  if (d_c) expect_shape("d_c", *d_c, {B, H});
  std::optional<Arr<S>> dx;
  if (input_gradient) dx = cfg.constant_input ? Arr<S>({B, D}) : Arr<S>({B, T, D});
  // The weight gradients go to the caller's buffers where given (a model's gradient buffer),
  // else to new arrays.
  if (out_kernel) expect_shape("out_kernel", *out_kernel, {D, 4 * H});
  if (out_recurrent_kernel) expect_shape("out_recurrent_kernel", *out_recurrent_kernel, {H, 4 * H});
  if (out_bias && !cache.has_bias) throw std::invalid_argument("out_bias given for an LSTM without a bias");
  if (out_bias) expect_shape("out_bias", *out_bias, {4 * H});
  Arr<S> dW = out_kernel ? *out_kernel : Arr<S>({D, 4 * H});
  Arr<S> dU = out_recurrent_kernel ? *out_recurrent_kernel : Arr<S>({H, 4 * H});
  std::optional<Arr<S>> dh0, dc0;
  if (initial_state_gradient) dh0 = Arr<S>({B, H}), dc0 = Arr<S>({B, H});
  std::optional<Arr<S>> db;
  if (cache.has_bias) db = out_bias ? *out_bias : Arr<S>({4 * H});
  LSTMGrads<S> g;
  g.dx = dx ? dx->mutable_data() : nullptr;
  g.dkernel = dW.mutable_data();
  g.drecurrent_kernel = dU.mutable_data();
  g.dbias = db ? db->mutable_data() : nullptr;
  g.dh0 = dh0 ? dh0->mutable_data() : nullptr;
  g.dc0 = dc0 ? dc0->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;  // pure C++ from here on
    lstm_backward(cache, opt_ptr(d_outputs), opt_ptr(d_h), opt_ptr(d_c), g);
  }
  py::object dbo = db ? py::object(*db) : py::none();
  py::object dxo = dx ? py::object(*dx) : py::none();
  py::object dh0o = dh0 ? py::object(*dh0) : py::none();
  py::object dc0o = dc0 ? py::object(*dc0) : py::none();
  return py::make_tuple(dxo, dW, dU, dbo, dh0o, dc0o);
}

template <typename S>
void adam(Arr<S>& param, const Arr<S>& grad, Arr<S>& m, Arr<S>& v, double lr, double beta_1,
          double beta_2, double epsilon, int64_t step) {
  const Index n = param.size();
  if (grad.size() != n || m.size() != n || v.size() != n)
    throw std::invalid_argument("adam_update: param, grad, m and v must have the same size");
  if (step < 1) throw std::invalid_argument("adam_update: step must be >= 1");
  S* p = param.mutable_data();
  S* mm = m.mutable_data();
  S* vv = v.mutable_data();
  const S* g = grad.data();
  py::gil_scoped_release release;
  adam_update(p, g, mm, vv, n, lr, beta_1, beta_2, epsilon, step);
}

using Ids = py::array_t<int64_t, py::array::c_style>;

// ids are checked against the vocabulary here too: an id out of range would read or write
// outside the table.
void check_ids(const char* name, const Ids& ids, Index V) {
  const int64_t* p = ids.data();
  for (Index n = 0; n < ids.size(); ++n)
    if (p[n] < 0 || p[n] >= V)
      throw std::invalid_argument(std::string(name) + " must be in [0, " + std::to_string(V) +
                                  "); got " + std::to_string(p[n]));
}

template <typename S>
Arr<S> embedding_fwd(const Ids& ids, const Arr<S>& table) {
  if (table.ndim() != 2)
    throw std::invalid_argument("embeddings must be 2-D (input_dim, output_dim); got " +
                                std::to_string(table.ndim()) + "-D");
  const Index V = table.shape(0), E = table.shape(1), N = ids.size();
  check_ids("ids", ids, V);
  std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
  shape.push_back(E);
  Arr<S> out(shape);
  S* o = out.mutable_data();
  const int64_t* i = ids.data();
  const S* t = table.data();
  py::gil_scoped_release release;  // pure C++ from here on
  embedding_forward(i, N, t, E, o);
  return out;
}

template <typename S>
void embedding_bwd(const Ids& ids, const Arr<S>& d_out, Arr<S>& grad, const std::optional<Ids>& clear) {
  if (grad.ndim() != 2)
    throw std::invalid_argument("grad must be 2-D (input_dim, output_dim); got " +
                                std::to_string(grad.ndim()) + "-D");
  const Index V = grad.shape(0), E = grad.shape(1), N = ids.size();
  if (d_out.size() != N * E)
    throw std::invalid_argument("d_out must hold " + std::to_string(N) + " rows of " + std::to_string(E) +
                                " values; got " + std::to_string(d_out.size()) + " values");
  check_ids("ids", ids, V);
  if (clear) check_ids("clear_ids", *clear, V);
  S* g = grad.mutable_data();
  const int64_t* i = ids.data();
  const S* d = d_out.data();
  const int64_t* c = clear ? clear->data() : nullptr;
  const Index nc = clear ? clear->size() : 0;
  py::gil_scoped_release release;
  embedding_backward(i, N, d, E, g, c, nc);
}

// out (M × N) = op(a) · op(b) [+ bias] [+ out]; op transposes where asked. All C-contiguous.
template <typename S>
void matmul_out(const Arr<S>& a, const Arr<S>& b, const std::optional<Arr<S>>& bias, Arr<S>& out,
                bool transpose_a, bool transpose_b, bool accumulate) {
  if (a.ndim() != 2 || b.ndim() != 2 || out.ndim() != 2) throw std::invalid_argument("matmul takes 2-D arrays");
  const Index ar = a.shape(0), ac = a.shape(1), br = b.shape(0), bc = b.shape(1);
  const Index M = transpose_a ? ac : ar, K = transpose_a ? ar : ac;
  const Index Kb = transpose_b ? bc : br, N = transpose_b ? br : bc;
  if (K != Kb)
    throw std::invalid_argument("matmul: inner sizes differ (" + std::to_string(K) + " and " + std::to_string(Kb) + ")");
  expect_shape("out", out, {M, N});
  if (bias) expect_shape("bias", *bias, {N});
  using V = MatrixView<const S>;
  const V A = transpose_a ? V::transposed(a.data(), M, K, ac) : V::row_major(a.data(), M, K, ac);
  const V B = transpose_b ? V::transposed(b.data(), K, N, bc) : V::row_major(b.data(), K, N, bc);
  const MatrixView<S> C = MatrixView<S>::row_major(out.mutable_data(), M, N, N);
  const S* pb = opt_ptr(bias);
  py::gil_scoped_release release;
  matmul(A, B, pb, C, accumulate ? Accumulate::Yes : Accumulate::No);
}

// C (batch, M, N) = op(a_i)·op(b_i) for each i: a (batch, M, K), or (batch, K, M) with transpose_a;
// likewise b (batch, K, N) or (batch, N, K).
template <typename S>
Arr<S> batched_matmul_new(const Arr<S>& a, const Arr<S>& b, bool transpose_a, bool transpose_b) {
  if (a.ndim() != 3 || b.ndim() != 3) throw std::invalid_argument("batched_matmul takes 3-D arrays");
  const Index batch = a.shape(0), ar = a.shape(1), ac = a.shape(2), br = b.shape(1), bc = b.shape(2);
  if (b.shape(0) != batch)
    throw std::invalid_argument("batched_matmul: a holds " + std::to_string(batch) + " matrices, b " +
                                std::to_string(b.shape(0)));
  const Index M = transpose_a ? ac : ar, K = transpose_a ? ar : ac;
  const Index Kb = transpose_b ? bc : br, N = transpose_b ? br : bc;
  if (K != Kb)
    throw std::invalid_argument("batched_matmul: inner sizes differ (" + std::to_string(K) + " and " +
                                std::to_string(Kb) + ")");
  Arr<S> out({batch, M, N});
  using V = MatrixView<const S>;
  const V A = transpose_a ? V::transposed(a.data(), M, K, ac) : V::row_major(a.data(), M, K, ac);
  const V B = transpose_b ? V::transposed(b.data(), K, N, bc) : V::row_major(b.data(), K, N, bc);
  const MatrixView<S> C = MatrixView<S>::row_major(out.mutable_data(), M, N, N);
  py::gil_scoped_release release;
  batched_matmul(batch, A, ar * ac, B, br * bc, C, M * N);
  return out;
}

// Luong dot attention (attention.h). q (B, Tq, D), k (B, Tv, D), v (B, Tv, Dv); scale: None or
// one value; value_mask (B, Tv), query_mask (B, Tq): None or 0/1; keep (B, Tq, Tv) or None.
// Returns (out, weights, dropped or None, raw or None); raw is kept with keep_raw.
template <typename S>
DotAttentionInputs<S> attention_inputs(const Arr<S>& q, const Arr<S>& k, const Arr<S>& v,
                                       const std::optional<Arr<S>>& scale, const std::optional<Mask>& value_mask,
                                       bool causal, const std::optional<Arr<S>>& keep,
                                       const std::optional<Mask>& query_mask) {
  if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3)
    throw std::invalid_argument("attention takes 3-D query, key and value; got " + std::to_string(q.ndim()) + "-D, " +
                                std::to_string(k.ndim()) + "-D and " + std::to_string(v.ndim()) + "-D");
  DotAttentionInputs<S> in;
  in.B = q.shape(0), in.Tq = q.shape(1), in.D = q.shape(2), in.Tv = v.shape(1), in.Dv = v.shape(2);
  expect_shape("key", k, {in.B, in.Tv, in.D});
  expect_shape("value", v, {in.B, in.Tv, in.Dv});
  if (in.Tv < 1) throw std::invalid_argument("attention needs a value of at least one step; got 0 steps");
  if (scale && scale->size() != 1)
    throw std::invalid_argument("the attention scale must be one value; got " + std::to_string(scale->size()));
  if (value_mask) expect_shape("value_mask", *value_mask, {in.B, in.Tv});
  if (keep) expect_shape("keep", *keep, {in.B, in.Tq, in.Tv});
  if (query_mask) expect_shape("query_mask", *query_mask, {in.B, in.Tq});
  in.q = q.data(), in.k = k.data(), in.v = v.data();
  in.scale = opt_ptr(scale);
  in.value_mask = value_mask ? value_mask->data() : nullptr;
  in.causal = causal;
  in.keep = opt_ptr(keep);
  in.query_mask = query_mask ? query_mask->data() : nullptr;
  return in;
}

template <typename S>
py::tuple dot_attention_fwd(const Arr<S>& q, const Arr<S>& k, const Arr<S>& v, const std::optional<Arr<S>>& scale,
                            const std::optional<Mask>& value_mask, bool causal, const std::optional<Arr<S>>& keep,
                            const std::optional<Mask>& query_mask, bool keep_raw) {
  const DotAttentionInputs<S> in = attention_inputs(q, k, v, scale, value_mask, causal, keep, query_mask);
  Arr<S> out({in.B, in.Tq, in.Dv}), weights({in.B, in.Tq, in.Tv});
  std::optional<Arr<S>> dropped, raw;
  if (keep) dropped.emplace(std::vector<py::ssize_t>{in.B, in.Tq, in.Tv});
  if (keep_raw) raw.emplace(std::vector<py::ssize_t>{in.B, in.Tq, in.Tv});
  DotAttentionOutputs<S> o;
  o.out = out.mutable_data(), o.weights = weights.mutable_data();
  o.dropped = dropped ? dropped->mutable_data() : nullptr;
  o.raw = raw ? raw->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    dot_attention_forward(in, o);
  }
  return py::make_tuple(out, weights, dropped, raw);
}

// ∂L/∂O may be a column slice of a wider array (Concatenate's gradient): rows of Dv values
// a fixed stride apart. Returns (dq, dk or None, dv, d_scale or None); without separate_key,
// the key is the value and dK is added into dv.
template <typename S>
py::tuple dot_attention_bwd(const Arr<S>& q, const Arr<S>& k, const Arr<S>& v, const std::optional<Arr<S>>& scale,
                            const std::optional<Arr<S>>& keep, const std::optional<Mask>& query_mask,
                            const Arr<S>& weights, const std::optional<Arr<S>>& dropped,
                            const std::optional<Arr<S>>& raw, const py::array_t<S>& d_out,
                            const std::optional<Arr<S>>& d_weights, bool separate_key) {
  const DotAttentionInputs<S> in = attention_inputs(q, k, v, scale, std::nullopt, false, keep, query_mask);
  expect_shape("weights", weights, {in.B, in.Tq, in.Tv});
  if (keep && !dropped) throw std::invalid_argument("with keep, the forward's dropped weights are needed; got None");
  if (dropped) expect_shape("dropped", *dropped, {in.B, in.Tq, in.Tv});
  if (scale && !raw) throw std::invalid_argument("with a scale, the forward's raw scores are needed; got None");
  if (raw) expect_shape("raw", *raw, {in.B, in.Tq, in.Tv});
  if (d_weights) expect_shape("d_weights", *d_weights, {in.B, in.Tq, in.Tv});
  expect_shape("d_out", d_out, {in.B, in.Tq, in.Dv});
  const py::ssize_t e = sizeof(S);
  if (d_out.strides(2) != e || d_out.strides(1) % e != 0 || d_out.strides(1) < in.Dv * e ||
      d_out.strides(0) != in.Tq * d_out.strides(1))
    throw std::invalid_argument("d_out must hold rows of contiguous values a fixed stride apart; got strides (" +
                                std::to_string(d_out.strides(0)) + ", " + std::to_string(d_out.strides(1)) + ", " +
                                std::to_string(d_out.strides(2)) + ") bytes");
  if (!separate_key && in.D != in.Dv)
    throw std::invalid_argument("a key that is the value needs the query's features (" + std::to_string(in.D) +
                                ") equal to the value's (" + std::to_string(in.Dv) + ")");
  Arr<S> dq({in.B, in.Tq, in.D}), dv({in.B, in.Tv, in.Dv});
  std::optional<Arr<S>> dk, d_scale;
  if (separate_key) dk.emplace(std::vector<py::ssize_t>{in.B, in.Tv, in.D});
  if (scale) d_scale.emplace(std::vector<py::ssize_t>{in.B});
  DotAttentionGrads<S> g;
  g.d_out = d_out.data(), g.d_out_stride = d_out.strides(1) / e;
  g.d_weights = opt_ptr(d_weights);
  g.dq = dq.mutable_data(), g.dv = dv.mutable_data();
  g.dk = dk ? dk->mutable_data() : nullptr;
  g.d_scale = d_scale ? d_scale->mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    dot_attention_backward(in, weights.data(), opt_ptr(dropped), opt_ptr(raw), g);
  }
  return py::make_tuple(dq, dk, dv, d_scale);
}

// The size of p's last (class) axis, which must be at least 1.
template <typename S>
Index class_axis(const Arr<S>& p) {
  if (p.ndim() < 1 || p.shape(p.ndim() - 1) < 1)
    throw std::invalid_argument("probabilities need a last (class) axis of size >= 1");
  return p.shape(p.ndim() - 1);
}

// The crossentropy bindings' shared part: checks the targets' size (targets_want: one label per
// row, or one value per probability) and g's (one per row), then runs
// kernel(p, g, rows, n, eps, values, grad) without the GIL into new (values, grad) arrays.
template <typename S, typename Kernel>
py::tuple crossentropy_on_softmax(const Arr<S>& p, const Arr<S>& g, const char* targets, Index targets_size,
                                  Index targets_want, Kernel&& kernel, double eps) {
  const Index n = class_axis(p), rows = p.size() / n;
  if (targets_size != targets_want || g.size() != rows)
    throw std::invalid_argument(std::string(targets) + " need " + std::to_string(targets_want) +
                                " values and weights one per row of probabilities (" + std::to_string(rows) +
                                "); got " + std::to_string(targets_size) + " and " + std::to_string(g.size()));
  Arr<S> values(std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim() - 1));
  Arr<S> grad(std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim()));
  const S* pp = p.data();
  const S* pg = g.data();
  S* pv = values.mutable_data();
  S* pd = grad.mutable_data();
  {
    py::gil_scoped_release release;
    kernel(pp, pg, rows, n, static_cast<S>(eps), pv, pd);
  }
  return py::make_tuple(values, grad);
}

template <typename S>
void register_dtype(py::module_& m, const char* suffix) {
  const std::string sfx(suffix);
  // module_local: every ISA variant of this module registers the same C++ type.
  py::class_<LSTMCache<S>>(m, ("LSTMCache" + sfx).c_str(), py::module_local(),
                           "What lstm_backward needs from one lstm_forward(training=True) call.")
      .def_property_readonly("batch", [](const LSTMCache<S>& c) { return c.cfg.B; })
      .def_property_readonly("timesteps", [](const LSTMCache<S>& c) { return c.cfg.T; })
      .def_property_readonly("features", [](const LSTMCache<S>& c) { return c.cfg.D; })
      .def_property_readonly("one_hot_input", [](const LSTMCache<S>& c) { return !c.ids.empty(); })
      .def_property_readonly("units", [](const LSTMCache<S>& c) { return c.cfg.H; })
      .def_property_readonly("return_sequences", [](const LSTMCache<S>& c) { return c.cfg.return_sequences; })
      .def_property_readonly("constant_input", [](const LSTMCache<S>& c) { return c.cfg.constant_input; })
      .def_property_readonly("has_bias", [](const LSTMCache<S>& c) { return c.has_bias; });
  py::class_<LSTMPackedWeights<S>>(m, ("LSTMPackedWeights" + sfx).c_str(), py::module_local(),
                                   "An LSTM's weights copied and packed once for many inference forwards.")
      .def_property_readonly("features", [](const LSTMPackedWeights<S>& p) { return p.D; })
      .def_property_readonly("units", [](const LSTMPackedWeights<S>& p) { return p.H; })
      .def_property_readonly("kernel", [](const LSTMPackedWeights<S>& p) {
        return copy_view(p, p.kernel, {p.D, kNumGates * p.H});
      })
      .def_property_readonly("recurrent_kernel", [](const LSTMPackedWeights<S>& p) {
        return copy_view(p, p.recurrent_kernel, {p.H, kNumGates * p.H});
      })
      .def_property_readonly("bias", [](const LSTMPackedWeights<S>& p) -> py::object {
        if (!p.has_bias) return py::none();
        return copy_view(p, p.bias, {kNumGates * p.H});
      });
  m.def(("pack_lstm_weights_" + sfx).c_str(), &pack_weights<S>, py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias").noconvert());
  m.def(("lstm_forward_" + sfx).c_str(), &forward<S>, py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("bias").noconvert(), py::arg("h0").noconvert(), py::arg("c0").noconvert(),
        py::arg("mask").noconvert(), py::arg("input_dropout").noconvert(),
        py::arg("recurrent_dropout").noconvert(), py::arg("activation"),
        py::arg("recurrent_activation"), py::arg("go_backwards"), py::arg("return_sequences"),
        py::arg("zero_output_for_mask"), py::arg("training"), py::arg("naive") = false,
        py::arg("timesteps") = 0, py::arg("packed") = py::none(), py::arg("check_weights") = false,
        py::arg("input_gradient") = true);
  m.def(("lstm_backward_" + sfx).c_str(), &backward<S>, py::arg("cache"),
        py::arg("d_outputs").noconvert(), py::arg("d_h").noconvert(), py::arg("d_c").noconvert(),
        py::arg("input_gradient") = true, py::arg("initial_state_gradient") = true,
        py::arg("out_kernel").noconvert() = py::none(), py::arg("out_recurrent_kernel").noconvert() = py::none(),
        py::arg("out_bias").noconvert() = py::none(), py::arg("kernel").noconvert() = py::none());
  m.def(("all_finite_" + sfx).c_str(), [](const Arr<S>& a) {
          const S* p = a.data();
          const Index n = a.size();
          py::gil_scoped_release release;
          return all_finite(p, n);
        }, py::arg("a").noconvert(), "True when no value is NaN or ±inf.");
  m.def(("adam_update_" + sfx).c_str(), &adam<S>, py::arg("param").noconvert(),
        py::arg("grad").noconvert(), py::arg("m").noconvert(), py::arg("v").noconvert(),
        py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
        py::arg("step"));
  m.def(("embedding_forward_" + sfx).c_str(), &embedding_fwd<S>, py::arg("ids").noconvert(),
        py::arg("table").noconvert());
  m.def(("embedding_backward_" + sfx).c_str(), &embedding_bwd<S>, py::arg("ids").noconvert(),
        py::arg("d_out").noconvert(), py::arg("grad").noconvert(), py::arg("clear_ids").noconvert());
  m.def(("softmax_" + sfx).c_str(), [](const Arr<S>& x) {
          if (x.ndim() < 1 || x.shape(x.ndim() - 1) < 1) throw std::invalid_argument("softmax needs a last axis of size >= 1");
          const Index n = x.shape(x.ndim() - 1), rows = x.size() / n;
          Arr<S> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          const S* px = x.data();
          S* py_ = y.mutable_data();
          {
            py::gil_scoped_release release;
            softmax_rows(px, rows, n, py_);
          }
          return y;
        }, py::arg("x").noconvert(), "Softmax over the last axis.");
  // Crossentropy on softmax probabilities and ∂L/∂z (softmax.h). Shapes and label ranges are
  // checked again here: a wrong one would read or write outside the arrays.
  m.def(("xent_softmax_sparse_" + sfx).c_str(), [](const Arr<S>& p, const Ids& labels, const Arr<S>& g, double eps) {
          const Index n = class_axis(p);
          check_ids("labels", labels, n);
          const int64_t* pl = labels.data();
          return crossentropy_on_softmax(p, g, "labels", labels.size(), p.size() / n,
                                         [pl](const S* pp, const S* pg, Index rows, Index cols, S e, S* pv, S* pd) {
                                           xent_softmax_sparse(pp, pl, pg, rows, cols, e, pv, pd);
                                         }, eps);
        }, py::arg("p").noconvert(), py::arg("labels").noconvert(), py::arg("g").noconvert(), py::arg("eps"),
        "(per-row crossentropy, its gradient with respect to the softmax's logits scaled by g).");
  m.def(("xent_softmax_dense_" + sfx).c_str(), [](const Arr<S>& p, const Arr<S>& t, const Arr<S>& g, double eps) {
          const S* pt = t.data();
          return crossentropy_on_softmax(p, g, "targets", t.size(), p.size(),
                                         [pt](const S* pp, const S* pg, Index rows, Index cols, S e, S* pv, S* pd) {
                                           xent_softmax_dense(pp, pt, pg, rows, cols, e, pv, pd);
                                         }, eps);
        }, py::arg("p").noconvert(), py::arg("t").noconvert(), py::arg("g").noconvert(), py::arg("eps"),
        "(per-row crossentropy, its gradient with respect to the softmax's logits scaled by g).");
  m.def(("concat_" + sfx).c_str(), [](const std::vector<Arr<S>>& xs, py::ssize_t outer) {
          // Each x viewed as (outer, size / outer): ops.concatenate has checked the shapes.
          if (xs.empty() || outer < 1)
            throw std::invalid_argument("concat needs at least one array and outer >= 1; got " +
                                        std::to_string(xs.size()) + " arrays and outer = " + std::to_string(outer));
          std::vector<const S*> ptrs;
          std::vector<Index> inner;
          Index width = 0;
          for (const auto& x : xs) {
            if (x.size() % outer != 0)
              throw std::invalid_argument("concat: an array of " + std::to_string(x.size()) +
                                          " values does not split into " + std::to_string(outer) + " rows");
            ptrs.push_back(x.data());
            inner.push_back(static_cast<Index>(x.size() / outer));
            width += inner.back();
          }
          Arr<S> y({static_cast<py::ssize_t>(outer), static_cast<py::ssize_t>(width)});
          S* py_ = y.mutable_data();
          {
            py::gil_scoped_release release;
            concat_rows(static_cast<Index>(outer), ptrs, inner, py_);
          }
          return y;
        },
        py::arg("xs").noconvert(), py::arg("outer"),
        "The arrays, each viewed as (outer, ·), joined row by row into (outer, Σ widths) (arrays.h).");
  m.def(("add_rows_" + sfx).c_str(), [](const py::array_t<S>& a, py::ssize_t lda, const py::array_t<S>& b, py::ssize_t ldb,
                                        py::ssize_t rows, py::ssize_t cols) {
          // a and b: rows of cols values, lda and ldb values apart, from their first element
          // (ops.add has checked that the views hold them).
          // Element r·ld + c of x must lie inside the view: its last value is at offset
          // Σ_i (shape_i − 1)·stride_i bytes (strides ≥ 0), which the last row's end must not pass.
          auto fits = [&](const py::array_t<S>& x, py::ssize_t ld) {
            if (rows < 1 || cols < 1 || ld < cols || x.size() != rows * cols) return false;
            py::ssize_t extent = 0;
            for (py::ssize_t i = 0; i < x.ndim(); ++i) {
              if (x.strides(i) < 0) return false;
              extent += (x.shape(i) - 1) * x.strides(i);
            }
            return ((rows - 1) * ld + cols - 1) * py::ssize_t(sizeof(S)) <= extent;
          };
          if (!fits(a, lda) || !fits(b, ldb))
            throw std::invalid_argument("add_rows: expected two arrays of " + std::to_string(rows) + " rows of " +
                                        std::to_string(cols) + " values, rows " + std::to_string(lda) + " and " +
                                        std::to_string(ldb) + " values apart, inside the arrays; got " +
                                        std::to_string(a.size()) + " and " + std::to_string(b.size()) + " values");
          Arr<S> y({rows, cols});
          S* py_ = y.mutable_data();
          const S* pa = a.data();
          const S* pb = b.data();
          {
            py::gil_scoped_release release;
            add_rows<S>(rows, cols, pa, lda, pb, ldb, py_);
          }
          return y;
        },
        py::arg("a").noconvert(), py::arg("lda"), py::arg("b").noconvert(), py::arg("ldb"), py::arg("rows"),
        py::arg("cols"), "a + b over rows of cols values, lda and ldb apart (arrays.h).");
  m.def(("column_sums_" + sfx).c_str(), [](const Arr<S>& a, Arr<S>& y) {
          // a viewed as (size / y.size, y.size): the sum over every axis but the last.
          if (a.ndim() < 1 || y.ndim() != 1 || y.size() < 1 || a.shape(a.ndim() - 1) != y.size())
            throw std::invalid_argument("column_sums: expected an array whose last axis has as many values as the "
                                        "1-D output (" + std::to_string(y.size()) + "); got " +
                                        std::to_string(a.ndim()) + " axes, the last of " +
                                        std::to_string(a.ndim() ? a.shape(a.ndim() - 1) : 0));
          const Index cols = y.size(), rows = a.size() / cols;
          const S* pa = a.data();
          S* py_ = y.mutable_data();
          {
            py::gil_scoped_release release;
            column_sums<S>(rows, cols, pa, py_);
          }
        },
        py::arg("a").noconvert(), py::arg("y").noconvert(),
        "y = the sum of a over every axis but the last, rows summed in blocks of fixed size (arrays.h).");
  m.def(("dropout_" + sfx).c_str(), [](const Arr<S>& x, double rate, std::uint64_t key) {
          if (!(rate >= 0.0 && rate < 1.0)) throw std::invalid_argument("dropout rate must be in [0, 1)");
          Arr<S> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          const S* px = x.data();
          S* py_ = y.mutable_data();
          const Index n = x.size();
          {
            py::gil_scoped_release release;
            dropout(px, n, rate, key, py_);
          }
          return y;
        }, py::arg("x").noconvert(), py::arg("rate"), py::arg("key"),
        "x · keep / (1 − rate), keep drawn from the key and each element's index (dropout.h).");
  m.def(("dropout_mask_" + sfx).c_str(), [](py::ssize_t n, double rate, std::uint64_t key) {
          if (!(rate >= 0.0 && rate < 1.0)) throw std::invalid_argument("dropout rate must be in [0, 1)");
          if (n < 0) throw std::invalid_argument("dropout_mask needs n >= 0");
          Arr<S> mask(n);
          S* pm = mask.mutable_data();
          {
            py::gil_scoped_release release;
            dropout_mask(static_cast<Index>(n), rate, key, pm);
          }
          return mask;
        }, py::arg("n"), py::arg("rate"), py::arg("key"),
        "keep / (1 − rate) for elements 0..n−1: the mask dropout_ multiplies by.");
  m.def(("activation_" + sfx).c_str(), [](const Arr<S>& x, int code) {
          if (code < 0 || code > kHardSigmoidCode)
            throw std::invalid_argument("activation code must be 0 (tanh), 1 (relu), 2 (sigmoid), 3 (linear) or "
                                        "4 (hard_sigmoid); got " + std::to_string(code));
          Arr<S> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
          const S* px = x.data();
          S* py_ = y.mutable_data();
          const Index n = x.size();
          {
            py::gil_scoped_release release;
            activation_values(code, px, n, py_);
          }
          return y;
        }, py::arg("x").noconvert(), py::arg("code"), "y = f(x) element-wise (f by its code).");
  // A stream of B rows through one LSTM, one step per call (LSTMStream): keeps the packed
  // weights alive; h and c are the caller's, updated in place.
  py::class_<LSTMStream<S>>(m, ("LSTMStream_" + sfx).c_str(), py::module_local(),
                            "An LSTM run one time step per call with the forward's arithmetic.")
      .def(py::init([](const LSTMPackedWeights<S>& packed, Index batch, int activation, int recurrent_activation) {
             if (batch < 1) throw std::invalid_argument("LSTMStream: batch must be >= 1; got " + std::to_string(batch));
             const auto [phi, sigma] = activation_codes(activation, recurrent_activation);
             return std::make_unique<LSTMStream<S>>(packed, batch, phi, sigma);
           }),
           py::arg("packed"), py::arg("batch"), py::arg("activation"), py::arg("recurrent_activation"),
           py::keep_alive<1, 2>())
      .def("step",
           [](LSTMStream<S>& st, const Arr<S>& x, Arr<S>& h, Arr<S>& c, Index s, bool from_state) {
             const Index B = st.batch(), D = st.weights().D, H = st.weights().H;
             expect_shape("x", x, {B, D});
             expect_shape("h", h, {B, H});
             expect_shape("c", c, {B, H});
             if (s < 0) throw std::invalid_argument("LSTMStream.step: s must be >= 0; got " + std::to_string(s));
             if (!h.writeable() || !c.writeable()) throw std::invalid_argument("LSTMStream.step: h and c must be writeable");
             S *hp = h.mutable_data(), *cp = c.mutable_data();
             py::gil_scoped_release release;
             st.step(x.data(), hp, cp, s, from_state);
           },
           py::arg("x").noconvert(), py::arg("h").noconvert(), py::arg("c").noconvert(), py::arg("s"),
           py::arg("from_state"), "x (B, D) -> h, c (B, H) in place; s: the step's index since the start.");
  m.def(("batched_matmul_" + sfx).c_str(), &batched_matmul_new<S>, py::arg("a").noconvert(), py::arg("b").noconvert(),
        py::arg("transpose_a"), py::arg("transpose_b"));
  m.def(("dot_attention_forward_" + sfx).c_str(), &dot_attention_fwd<S>, py::arg("q").noconvert(),
        py::arg("k").noconvert(), py::arg("v").noconvert(), py::arg("scale").noconvert(),
        py::arg("value_mask").noconvert(), py::arg("causal"), py::arg("keep").noconvert(),
        py::arg("query_mask").noconvert(), py::arg("keep_raw"));
  m.def(("dot_attention_backward_" + sfx).c_str(), &dot_attention_bwd<S>, py::arg("q").noconvert(),
        py::arg("k").noconvert(), py::arg("v").noconvert(), py::arg("scale").noconvert(),
        py::arg("keep").noconvert(), py::arg("query_mask").noconvert(), py::arg("weights").noconvert(),
        py::arg("dropped").noconvert(), py::arg("raw").noconvert(), py::arg("d_out").noconvert(),
        py::arg("d_weights").noconvert(), py::arg("separate_key"));
  m.def(("matmul_" + sfx).c_str(), &matmul_out<S>, py::arg("a").noconvert(), py::arg("b").noconvert(),
        py::arg("bias").noconvert(), py::arg("out").noconvert(), py::arg("transpose_a"),
        py::arg("transpose_b"), py::arg("accumulate"));
}

}  // namespace

PYBIND11_MODULE(LSTMFAST_MODULE, m) {
  m.doc() = "lstmfast C++ kernels (" LSTMFAST_ISA " build); use lstmfast.ops instead.";
  Eigen::setNbThreads(1);  // all parallelism is lstmfast's own, over fixed tiles
  // lstm_forward's refusal of weights holding NaN or ±inf: a ValueError naming the array.
  py::register_exception<lstmfast::NonFiniteWeights>(m, "NonFiniteWeightsError", PyExc_ValueError);
  register_dtype<float>(m, "f32");
  register_dtype<double>(m, "f64");
  m.attr("isa") = LSTMFAST_ISA;
  m.def("set_num_threads", &lstmfast::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &lstmfast::max_threads);
  m.def("threads_in_use", &lstmfast::threads_in_use);
  m.def("set_adaptive_threads", &lstmfast::set_adaptive_threads, py::arg("on"));
  m.def("adaptive_threads", &lstmfast::adaptive_threads);
  m.def("next_team_size", &lstmfast::next_team_size, py::arg("used"), py::arg("set"), py::arg("contention"),
        py::arg("idle_cores"));
  m.def("thread_policy_readings", &lstmfast::thread_policy_readings);
  m.def("cpu_supports", [](const std::string& feature) { return lstmfast::cpu_supports(feature); });
}
