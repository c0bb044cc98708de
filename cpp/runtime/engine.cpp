// engine.cpp — runs a model file's graph (model_file.h) on the kernels of one instruction set,
// the same calls Python's predict makes, so that the results are the same bits:
//
//   LSTM            lstm_forward on weights packed once (as predict packs them), a RepeatVector's
//                   output taken as a constant input, one-hot inputs as ids, the mask of the layer
//                   below; Bidirectional: the forward and the go_backwards LSTM, the latter's
//                   outputs put back in time order, then merged (concat | sum | ave | mul)
//   Dense           z = x·kernel + bias (matmul, the (B·T, D) matrix of a sequence), y = f(z):
//                   softmax_rows or activation_values, relu as max(z, 0)
//   Embedding       y[b, t] = E[ids[b, t]]; mask_zero: mask = ids ≠ 0
//   Masking         keep[b, t] = any_j x[b, t, j] ≠ mask_value; y = keep ? x : 0
//   Attention       dot_attention_forward: S = Q·Kᵀ (× scale), A = softmax_j(S) with hidden
//                   positions (value mask, causal) lowered by 1e9, O = A·V
//   pooling, merges element by element in numpy's order of operations
//
// A stream (Sequential models) runs each LSTM one step at a time with LSTMStream: the
// forward's own arithmetic, so the steps give predict's bits.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>

#include "../attention.h"
#include "../lstm.h"
#include "../matmul.h"
#include "../softmax.h"
#include "../embedding.h"
#include "engine.h"

#include "../namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

using runtime::Act;
using runtime::Kind;
using runtime::ModelFile;
using runtime::Node;
using runtime::Ref;
using runtime::shape_str;

// One output of a node for one batch: values (row-major), their shape, and the (B, T) mask that
// goes with them (empty when none). `repeated`: a RepeatVector's output, shape (B, n, D), of
// which only the (B, D) vector is stored.
struct Value {
  std::vector<int64_t> shape;
  std::vector<float> data;
  std::vector<uint8_t> mask;
  bool repeated = false;
};

int64_t product(const std::vector<int64_t>& s, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < s.size(); ++i) n *= s[i];
  return n;
}

// A repeated value written out in full.
const Value& materialized(const Value& v, Value& scratch) {
  if (!v.repeated) return v;
  const int64_t B = v.shape[0], n = v.shape[1], D = v.shape[2];
  scratch.shape = v.shape;
  scratch.data.resize(size_t(B * n * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n; ++t) std::copy_n(v.data.data() + b * D, D, scratch.data.data() + (b * n + t) * D);
  scratch.mask.clear();
  scratch.repeated = false;
  return scratch;
}

// y = f(z) in place, as Dense and Activation compute it (softmax through `scratch`, whose
// buffer is swapped with z's: nothing is allocated once both have grown).
void activate(Act a, std::vector<float>& z, int64_t last, std::vector<float>& scratch) {
  switch (a) {
    case Act::Linear: return;
    case Act::Relu:
      for (float& v : z) v = v >= 0.f ? v : 0.f;  // max(z, 0)
      return;
    case Act::Softmax: {
      scratch.resize(z.size());
      softmax_rows(z.data(), Index(z.size()) / last, last, scratch.data());
      z.swap(scratch);
      return;
    }
    default: activation_values(int(a), z.data(), Index(z.size()), z.data()); return;  // tanh, sigmoid, hard_sigmoid
  }
}

static_assert(int(Act::Tanh) == int(Activation::Tanh) && int(Act::Relu) == int(Activation::Relu) &&
                  int(Act::Sigmoid) == int(Activation::Sigmoid) && int(Act::Linear) == int(Activation::Linear) &&
                  int(Act::HardSigmoid) == kHardSigmoidCode,
              "the runtime's activation codes are the kernels'");

// An LSTM's φ and σ as the kernels name them.
Activation phi(const runtime::LSTMOptions& o) { return static_cast<Activation>(int(o.activation)); }
RecurrentActivation sigma(const runtime::LSTMOptions& o) {
  return o.recurrent_activation == Act::HardSigmoid ? RecurrentActivation::HardSigmoid : RecurrentActivation::Sigmoid;
}

// Refuses NaN and ±inf in n values given to the model, naming where the first one lies.
void check_finite(const float* p, int64_t n, const std::string& what) {
  if (all_finite(p, Index(n))) return;
  int64_t k = 0;
  while (std::isfinite(p[k])) ++k;
  throw Error(what + " holds " + (std::isnan(p[k]) ? "NaN" : "inf") + " at flat index " + std::to_string(k) +
              "; the model takes finite values");
}

// The id a float token holds: a whole number in [0, input_dim) of Embedding n.
int64_t token_id(const Node& n, float v) {
  if (v != std::floor(v))
    throw Error("Embedding layer '" + n.name + "' expects integer token ids; got " + std::to_string(v));
  if (v < 0 || v >= float(n.input_dim))
    throw Error("Embedding layer '" + n.name + "' has input_dim=" + std::to_string(n.input_dim) +
                ", so ids must lie in [0, " + std::to_string(n.input_dim - 1) + "]; got id " + std::to_string(int64_t(v)));
  return int64_t(v);
}

const std::vector<float>& weight(const ModelFile& f, int i) { return f.weights.at(size_t(i)).values; }

class Engine final : public runtime::Engine {
 public:
  explicit Engine(std::shared_ptr<const ModelFile> file) : file_(std::move(file)) {
    const auto& nodes = file_->nodes;
    packed_.resize(nodes.size());
    states_.resize(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      const Node& n = nodes[i];
      if (n.kind == Kind::LSTM) packed_[i][0] = pack(n.lstm);
      if (n.kind == Kind::Bidirectional) {
        packed_[i][0] = pack(n.lstm);
        packed_[i][1] = pack(n.lstm_backward);
      }
    }
  }

  std::vector<Tensor> predict(const std::vector<TensorView>& inputs, int64_t batch_size) override {
    const ModelFile& f = *file_;
    if (inputs.size() != f.inputs.size())
      throw Error("this model has " + std::to_string(f.inputs.size()) + " input(s); predict was given " +
                  std::to_string(inputs.size()));
    if (batch_size < 1) throw Error("batch_size must be a positive integer; got " + std::to_string(batch_size));
    int64_t N = -1;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const TensorSpec& spec = f.input_specs[i];
      const TensorView& v = inputs[i];
      bool ok = v.shape.size() == spec.shape.size() && !v.shape.empty();
      for (size_t d = 1; ok && d < v.shape.size(); ++d) ok = v.shape[d] >= 1 && (spec.shape[d] < 0 || spec.shape[d] == v.shape[d]);
      if (!ok || v.shape[0] < 1)
        throw Error("input '" + spec.name + "' must have shape " + shape_str(spec.shape) + " with at least one row; got " +
                    shape_str(v.shape));
      if (N >= 0 && v.shape[0] != N)
        throw Error("all inputs must have the same number of rows; got " + std::to_string(N) + " and " +
                    std::to_string(v.shape[0]));
      N = v.shape[0];
      if (!v.data) throw Error("input '" + spec.name + "' has no data (a null pointer)");
      check_finite(v.data, product(v.shape), "input '" + spec.name + "'");
    }
    std::vector<Tensor> out(f.outputs.size());
    for (int64_t b0 = 0; b0 < N; b0 += batch_size) {
      const int64_t bn = std::min(batch_size, N - b0);
      std::vector<std::vector<Value>> values = run(inputs, b0, bn);
      for (size_t o = 0; o < f.outputs.size(); ++o) {
        Value scratch;
        const Value& y = materialized(values[size_t(f.outputs[o].first)][size_t(f.outputs[o].second)], scratch);
        if (b0 == 0) {
          out[o].shape = y.shape;
          out[o].shape[0] = N;
          out[o].values.reserve(size_t(product(out[o].shape)));
        }
        out[o].values.insert(out[o].values.end(), y.data.begin(), y.data.end());
      }
    }
    return out;
  }

  void reset_states() override {
    for (auto& s : states_)
      for (auto& v : s) std::fill(v.begin(), v.end(), 0.f);
  }

  std::unique_ptr<runtime::StreamEngine> stream(int64_t batch) const override;

  const std::shared_ptr<const ModelFile>& file() const { return file_; }
  const std::shared_ptr<LSTMPackedWeights<float>>& packed(size_t node) const { return packed_[node][0]; }
  // A stateful LSTM's carried (h, c) of direction k, or empty.
  const std::vector<float>& state(size_t node, int k) const { return states_[node][size_t(k)]; }

 private:
  std::shared_ptr<LSTMPackedWeights<float>> pack(const runtime::LSTMOptions& o) const {
    const auto& W = file_->weights[size_t(o.kernel)];
    return std::make_shared<LSTMPackedWeights<float>>(W.shape[0], o.units, W.values.data(),
                                                      weight(*file_, o.recurrent_kernel).data(),
                                                      o.bias >= 0 ? weight(*file_, o.bias).data() : nullptr);
  }

  // One LSTM over x (B, T, D) — or the (B, D) vector of a repeated x — from (h0, c0) or zeros.
  void lstm(const runtime::LSTMOptions& o, const LSTMPackedWeights<float>& P, const Value& x, const float* h0,
            const float* c0, std::vector<float>* carried, Value& y, Value* h, Value* c) const {
    LSTMConfig cfg;
    cfg.constant_input = x.repeated;
    cfg.B = x.shape[0];
    cfg.T = x.shape[1];
    cfg.D = x.shape[2];
    cfg.H = o.units;
    cfg.activation = phi(o);
    cfg.recurrent_activation = sigma(o);
    cfg.go_backwards = o.go_backwards;
    cfg.return_sequences = o.return_sequences;
    cfg.zero_output_for_mask = o.zero_output_for_mask;
    const Index B = cfg.B, T = cfg.T, D = cfg.D, H = cfg.H;
    if (D != P.D) throw Error("an LSTM built for " + std::to_string(P.D) + " features received " + std::to_string(D));
    LSTMInputs<float> in;
    in.x = x.data.data();
    in.kernel = P.kernel.data();
    in.recurrent_kernel = P.recurrent_kernel.data();
    in.bias = P.has_bias ? P.bias.data() : nullptr;
    in.packed = &P;
    if (carried) {  // a stateful LSTM: (h, c) carried from the previous batch
      if (carried[0].empty()) {
        carried[0].assign(size_t(B * H), 0.f);
        carried[1].assign(size_t(B * H), 0.f);
      } else if (Index(carried[0].size()) != B * H) {
        throw Error("a stateful LSTM keeps the batch size it first ran with (" +
                    std::to_string(carried[0].size() / size_t(H)) + " rows); this batch has " + std::to_string(B) +
                    ": predict with that batch_size and a multiple of it as the number of rows");
      }
      h0 = carried[0].data();
      c0 = carried[1].data();
    }
    in.h0 = h0;
    in.c0 = c0;
    if (!x.repeated && !x.mask.empty()) in.mask = x.mask.data();
    std::vector<int32_t> ids;
    if (!cfg.constant_input && D >= kOneHotMinFeatures && one_hot_rows(x.data.data(), B * T, D, ids)) in.ids = ids.data();
    y.shape = o.return_sequences ? std::vector<int64_t>{B, T, H} : std::vector<int64_t>{B, H};
    y.data.resize(size_t(product(y.shape)));
    std::vector<float> hT(size_t(B * H)), cT(size_t(B * H));
    lstm_forward(cfg, in, y.data.data(), hT.data(), cT.data(), static_cast<LSTMCache<float>*>(nullptr));
    if (carried) {
      carried[0] = hT;
      carried[1] = cT;
    }
    if (h) *h = Value{{B, H}, std::move(hT), {}, false};
    if (c) *c = Value{{B, H}, std::move(cT), {}, false};
  }

  std::vector<std::vector<Value>> run(const std::vector<TensorView>& inputs, int64_t b0, int64_t bn) {
    const ModelFile& f = *file_;
    std::vector<std::vector<Value>> values(f.nodes.size());
    for (size_t i = 0; i < f.inputs.size(); ++i) {
      Value v;
      v.shape = inputs[i].shape;
      v.shape[0] = bn;
      const int64_t row = product(v.shape, 1);
      v.data.assign(inputs[i].data + b0 * row, inputs[i].data + (b0 + bn) * row);
      values[size_t(f.inputs[i])] = {std::move(v)};
    }
    for (size_t i = 0; i < f.nodes.size(); ++i) {
      const Node& n = f.nodes[i];
      if (n.kind == Kind::Input) continue;
      std::vector<const Value*> in;
      for (const Ref& r : n.inputs) in.push_back(&values[size_t(r.first)][size_t(r.second)]);
      values[i] = call(i, n, in);
    }
    return values;
  }

  std::vector<Value> call(size_t index, const Node& n, const std::vector<const Value*>& in) {
    const ModelFile& f = *file_;
    Value scratch;
    // Only an LSTM takes a RepeatVector's output as its vector (projected once, as Python's LSTM
    // does); every other layer receives it written out, as Python's Layer.receive gives it.
    const Value& x = n.kind == Kind::LSTM ? *in[0] : materialized(*in[0], scratch);
    const int64_t B = x.shape[0];
    switch (n.kind) {
      case Kind::LSTM: {
        std::vector<Value> out(size_t(n.outputs));
        const float* h0 = in.size() > 1 ? in[1]->data.data() : nullptr;
        const float* c0 = in.size() > 1 ? in[2]->data.data() : nullptr;
        check_states(n, in, 1, n.lstm.units);
        lstm(n.lstm, *packed_[index][0], x, h0, c0, n.lstm.stateful ? &states_[index][0] : nullptr,
             out[0], n.lstm.return_state ? &out[1] : nullptr, n.lstm.return_state ? &out[2] : nullptr);
        if (n.lstm.return_sequences && !x.repeated) out[0].mask = x.mask;
        return out;
      }
      case Kind::Bidirectional: {
        Value y, y_rev, hf, cf, hb, cb;
        check_states(n, in, 1, n.lstm.units);
        const bool given = in.size() > 1;
        lstm(n.lstm, *packed_[index][0], x, given ? in[1]->data.data() : nullptr, given ? in[2]->data.data() : nullptr,
             n.lstm.stateful ? &states_[index][0] : nullptr, y, &hf, &cf);
        lstm(n.lstm_backward, *packed_[index][1], x, given ? in[3]->data.data() : nullptr,
             given ? in[4]->data.data() : nullptr, n.lstm_backward.stateful ? &states_[index][2] : nullptr, y_rev, &hb, &cb);
        const int64_t Hf = n.lstm.units, Hb = n.lstm_backward.units;
        const int64_t T = n.lstm.return_sequences ? y.shape[1] : 1;
        if (n.lstm.return_sequences) {  // y_rev[:, ::-1]: back into time order
          std::vector<float> r(y_rev.data.size());
          for (int64_t b = 0; b < B; ++b)
            for (int64_t t = 0; t < T; ++t)
              std::copy_n(y_rev.data.data() + (b * T + (T - 1 - t)) * Hb, Hb, r.data() + (b * T + t) * Hb);
          y_rev.data.swap(r);
        }
        Value out;
        out.shape = y.shape;
        if (n.merge_mode == "concat") {
          out.shape.back() = Hf + Hb;
          out.data.resize(size_t(B * T * (Hf + Hb)));
          for (int64_t r = 0; r < B * T; ++r) {
            std::copy_n(y.data.data() + r * Hf, Hf, out.data.data() + r * (Hf + Hb));
            std::copy_n(y_rev.data.data() + r * Hb, Hb, out.data.data() + r * (Hf + Hb) + Hf);
          }
        } else {
          out.data.resize(y.data.size());
          for (size_t k = 0; k < y.data.size(); ++k) {
            const float a = y.data[k], b = y_rev.data[k];
            out.data[k] = n.merge_mode == "sum" ? a + b : n.merge_mode == "ave" ? (a + b) / 2.f : a * b;
          }
        }
        if (n.lstm.return_sequences && !x.repeated) out.mask = x.mask;
        std::vector<Value> outs{std::move(out)};
        if (n.lstm.return_state) {
          outs.push_back(std::move(hf));
          outs.push_back(std::move(cf));
          outs.push_back(std::move(hb));
          outs.push_back(std::move(cb));
        }
        return outs;
      }
      case Kind::Dense:
      case Kind::TimeDistributedDense: {
        const auto& W = f.weights[size_t(n.kernel)];
        const int64_t D = W.shape[0], U = n.units;
        if (x.shape.back() != D)
          throw Error("layer '" + n.name + "' expects " + std::to_string(D) + " features; got shape " + shape_str(x.shape));
        const int64_t M = product(x.shape) / D;
        Value y;
        y.shape = x.shape;
        y.shape.back() = U;
        y.data.resize(size_t(M * U));
        using V = MatrixView<const float>;
        // z = x·kernel + bias, x as one (M, D) matrix
        matmul(V::row_major(x.data.data(), M, D, D), V::row_major(W.values.data(), D, U, U),
               n.bias >= 0 ? weight(f, n.bias).data() : nullptr, MatrixView<float>::row_major(y.data.data(), M, U, U),
               Accumulate::No);
        std::vector<float> scratch_softmax;
        activate(n.activation, y.data, U, scratch_softmax);  // y = f(z)
        y.mask = x.mask;
        return {std::move(y)};
      }
      case Kind::Activation: {
        Value y = x;
        std::vector<float> scratch_softmax;
        activate(n.activation, y.data, x.shape.back(), scratch_softmax);
        return {std::move(y)};
      }
      case Kind::Embedding: {
        const auto& E = f.weights[size_t(n.kernel)];
        const int64_t count = product(x.shape), width = n.units;
        std::vector<int64_t> ids(static_cast<size_t>(count));
        for (int64_t k = 0; k < count; ++k) ids[size_t(k)] = token_id(n, x.data[size_t(k)]);
        Value y;
        y.shape = x.shape;
        y.shape.push_back(width);
        y.data.resize(size_t(count * width));
        embedding_forward(ids.data(), Index(count), E.values.data(), Index(width), y.data.data());  // y[b, t] = E[id]
        if (n.mask_zero && x.shape.size() == 2) {
          y.mask.resize(size_t(count));
          for (int64_t k = 0; k < count; ++k) y.mask[size_t(k)] = ids[size_t(k)] != 0;
        }
        return {std::move(y)};
      }
      case Kind::RepeatVector: {
        Value y;
        y.shape = {B, n.units, x.shape[1]};
        y.data = x.data;
        y.repeated = true;
        return {std::move(y)};
      }
      case Kind::Identity: return {x};
      case Kind::Masking: {
        const int64_t T = x.shape[1], D = x.shape[2];
        Value y = x;
        y.mask.assign(size_t(B * T), 0);
        for (int64_t r = 0; r < B * T; ++r) {
          const float* p = x.data.data() + r * D;
          bool keep = false;
          for (int64_t j = 0; j < D && !keep; ++j) keep = p[j] != n.mask_value;  // any_j x ≠ mask_value
          y.mask[size_t(r)] = keep;
          if (!keep) std::fill_n(y.data.data() + r * D, D, 0.f);
        }
        return {std::move(y)};
      }
      case Kind::Flatten: {
        Value y;
        y.shape = {B, product(x.shape, 1)};
        y.data = x.data;
        return {std::move(y)};
      }
      case Kind::GlobalMaxPooling1D:
      case Kind::GlobalAveragePooling1D: {
        const int64_t T = x.shape[1], D = x.shape[2];
        Value y;
        y.shape = {B, D};
        y.data.resize(size_t(B * D));
        const bool masked = !x.mask.empty();
        for (int64_t b = 0; b < B; ++b) {
          float* o = y.data.data() + b * D;
          const float* p = x.data.data() + b * T * D;
          if (n.kind == Kind::GlobalMaxPooling1D) {
            std::copy_n(p, D, o);  // max over t, t = 0 … T−1
            for (int64_t t = 1; t < T; ++t)
              for (int64_t j = 0; j < D; ++j) o[j] = p[t * D + j] > o[j] ? p[t * D + j] : o[j];
            continue;
          }
          // Σ_t x_t in the order of t (masked steps as zeros), then / T (numpy's mean divides in
          // double) or / Σ_t m_t (in float, as the masked mean does)
          std::fill_n(o, D, 0.f);
          float count = 0;
          for (int64_t t = 0; t < T; ++t) {
            const bool m = !masked || x.mask[size_t(b * T + t)];
            count += m ? 1.f : 0.f;
            for (int64_t j = 0; j < D; ++j) o[j] = t == 0 ? (m ? p[j] : 0.f) : o[j] + (m ? p[t * D + j] : 0.f);
          }
          for (int64_t j = 0; j < D; ++j) o[j] = masked ? o[j] / count : float(double(o[j]) / double(T));
        }
        return {std::move(y)};
      }
      case Kind::Attention: {
        // S = Q·Kᵀ (× s); hidden positions (value mask, causal) − 1e9; A = softmax_j(S); O = A·V,
        // zeros at masked query steps: the kernel of Python's Attention (attention.h)
        Value scratch_v, scratch_k;
        const Value& v = materialized(*in[1], scratch_v);
        const Value& key = in.size() > 2 ? materialized(*in[2], scratch_k) : v;
        const int64_t Tq = x.shape[1], D = x.shape[2], Tv = v.shape[1], Dv = v.shape[2];
        if (key.shape[0] != B || v.shape[0] != B || key.shape[1] != Tv || key.shape[2] != D)
          throw Error("layer '" + n.name + "' received query " + shape_str(x.shape) + ", value " + shape_str(v.shape) +
                      " and key " + shape_str(key.shape) + ", which do not fit together");
        DotAttentionInputs<float> att;
        att.B = Index(B), att.Tq = Index(Tq), att.Tv = Index(Tv), att.D = Index(D), att.Dv = Index(Dv);
        att.q = x.data.data(), att.k = key.data.data(), att.v = v.data.data();
        att.scale = n.kernel >= 0 ? weight(f, n.kernel).data() : nullptr;
        att.value_mask = in[1]->mask.empty() ? nullptr : in[1]->mask.data();
        att.causal = n.causal;
        att.query_mask = x.mask.empty() ? nullptr : x.mask.data();
        std::vector<float> weights(size_t(B * Tq * Tv));
        Value y;
        y.shape = {B, Tq, Dv};
        y.data.resize(size_t(B * Tq * Dv));
        DotAttentionOutputs<float> outputs;
        outputs.out = y.data.data(), outputs.weights = weights.data();
        dot_attention_forward(att, outputs);
        y.mask = x.mask;
        return {std::move(y)};
      }
      default: break;
    }
    // merges: element by element, in the order of the inputs
    std::vector<Value> scratch_in(in.size());
    std::vector<const Value*> xs;
    for (size_t k = 0; k < in.size(); ++k) xs.push_back(&materialized(*in[k], scratch_in[k]));
    Value y;
    if (n.kind == Kind::Concatenate) {
      int64_t width = 0;
      for (const Value* v : xs) width += v->shape.back();
      y.shape = xs[0]->shape;
      y.shape.back() = width;
      const int64_t rows = product(xs[0]->shape) / xs[0]->shape.back();
      y.data.resize(size_t(rows * width));
      for (const Value* v : xs)
        if (product(v->shape) / v->shape.back() != rows)
          throw Error("layer '" + n.name + "' joins inputs of shapes " + shape_str(xs[0]->shape) + " and " + shape_str(v->shape));
      int64_t at = 0;
      for (const Value* v : xs) {
        const int64_t w = v->shape.back();
        for (int64_t r = 0; r < rows; ++r) std::copy_n(v->data.data() + r * w, w, y.data.data() + r * width + at);
        at += w;
      }
      // the mask: OR of the inputs' masks, an input without one counting as unmasked (Keras)
      bool any = false, all = true;
      for (const Value* v : in) {
        if (v->mask.empty()) all = false;
        else any = true;
      }
      if (any) {  // every input masked: the OR of their masks; else every step is kept
        y.mask.assign(size_t(rows), all ? 0 : 1);
        if (all)
          for (const Value* v : in)
            for (int64_t r = 0; r < rows; ++r) y.mask[size_t(r)] |= v->mask[size_t(r)];
      }
      return {std::move(y)};
    }
    for (const Value* v : xs)
      if (v->shape != xs[0]->shape)
        throw Error("layer '" + n.name + "' merges inputs of shapes " + shape_str(xs[0]->shape) + " and " + shape_str(v->shape) +
                    "; the C++ runtime merges equal shapes");
    y = *xs[0];
    y.mask.clear();
    for (size_t k = 1; k < xs.size(); ++k) {
      const std::vector<float>& b = xs[k]->data;
      for (size_t e = 0; e < y.data.size(); ++e) {
        float& a = y.data[e];
        switch (n.kind) {
          case Kind::Add: case Kind::Average: a = a + b[e]; break;
          case Kind::Subtract: a = a - b[e]; break;
          case Kind::Multiply: a = a * b[e]; break;
          case Kind::Maximum: a = b[e] > a ? b[e] : a; break;
          case Kind::Minimum: a = b[e] < a ? b[e] : a; break;
          default: break;
        }
      }
    }
    if (n.kind == Kind::Average)
      for (float& a : y.data) a = a / float(xs.size());  // (1/K) Σ_k x_k
    return {std::move(y)};
  }

  void check_states(const Node& n, const std::vector<const Value*>& in, size_t first, int64_t units) const {
    for (size_t k = first; k < in.size(); ++k)
      if (in[k]->shape.size() != 2 || in[k]->shape[1] != units || in[k]->shape[0] != in[0]->shape[0])
        throw Error("layer '" + n.name + "': initial state " + std::to_string(k - first) + " must have shape (" +
                    std::to_string(in[0]->shape[0]) + ", " + std::to_string(units) + "); got " + shape_str(in[k]->shape));
  }

  std::shared_ptr<const ModelFile> file_;
  std::vector<std::array<std::shared_ptr<LSTMPackedWeights<float>>, 2>> packed_;
  std::vector<std::array<std::vector<float>, 4>> states_;  // stateful LSTMs: h, c (forward), h, c (backward)
};

// ---------------------------------------------------------------------------- streams

class Stream final : public runtime::StreamEngine {
 public:
  Stream(const Engine& engine, int64_t batch) : file_(engine.file()), B_(batch) {
    if (batch < 1) throw Error("a stream's batch must be a positive integer; got " + std::to_string(batch));
    const ModelFile& f = *file_;
    if (!f.sequential)
      throw Error("stream() runs Sequential models so far; '" + f.name + "' is a functional model");
    int64_t width = f.input_specs[0].shape.back();
    for (size_t i = 0; i < f.nodes.size(); ++i) {
      const Node& n = f.nodes[i];
      Step s;
      s.node = &n;
      switch (n.kind) {
        case Kind::Input: case Kind::Identity: continue;
        case Kind::LSTM: {
          if (n.lstm.go_backwards)
            throw Error("layer '" + n.name + "': go_backwards reads the sequence from its end; a stream only has the steps so far");
          const int64_t H = n.lstm.units;
          s.h.assign(size_t(B_ * H), 0.f);
          s.c.assign(size_t(B_ * H), 0.f);
          s.weights = engine.packed(i);
          s.lstm = std::make_unique<LSTMStream<float>>(*s.weights, B_, phi(n.lstm), sigma(n.lstm));
          const auto& carried = engine.state(i, 0);
          if (n.lstm.stateful && carried.size() == s.h.size()) {  // a stateful LSTM goes on from its state
            s.h0 = carried;
            s.c0 = engine.state(i, 1);
          }
          width = H;
          break;
        }
        case Kind::Dense: case Kind::TimeDistributedDense: case Kind::Activation: case Kind::Embedding: {
          if (n.kind == Kind::Embedding && i != 1)
            throw Error("layer '" + n.name + "': an Embedding must be the first layer of a streamed model");
          if (n.kind == Kind::Embedding) {
            embedding_first_ = true;
            width = n.units;
          } else if (n.kind != Kind::Activation) {
            width = n.units;
          }
          s.y.assign(size_t(B_ * width), 0.f);
          break;
        }
        default:
          throw Error("layer '" + n.name + "' (" + n.class_name + ") cannot run one step at a time: it needs the whole "
                      "sequence (streaming runs LSTM, Dense, Embedding, Activation and dropout layers)");
      }
      plan_.push_back(std::move(s));
    }
    input_size_ = embedding_first_ ? B_ : B_ * f.input_specs[0].shape.back();
    out_.shape = {B_, width};
    reset();
  }

  const Tensor& step(const float* x_t) override {
    if (!x_t) throw Error("step() was given no data (a null pointer)");
    check_finite(x_t, input_size_, "the step's input");
    const float* x = x_t;
    int64_t width = embedding_first_ ? 1 : input_size_ / B_;
    for (Step& s : plan_) {
      const Node& n = *s.node;
      if (n.kind == Kind::LSTM) {
        // z = x_t·W + b + h_{t−1}·U, then the cell: h and c updated in place
        s.lstm->step(x, s.h.data(), s.c.data(), steps_, !s.h0.empty());
        x = s.h.data();
        width = n.lstm.units;
      } else if (n.kind == Kind::Embedding) {
        for (int64_t b = 0; b < B_; ++b)  // y[b] = E[id_b]
          std::copy_n(weight(*file_, n.kernel).data() + token_id(n, x[b]) * n.units, n.units, s.y.data() + b * n.units);
        x = s.y.data();
        width = n.units;
      } else if (n.kind == Kind::Activation) {
        std::copy_n(x, B_ * width, s.y.data());
        activate(n.activation, s.y, width, s.z);
        x = s.y.data();
      } else {  // Dense on (B, D)
        const auto& W = file_->weights[size_t(n.kernel)];
        using V = MatrixView<const float>;
        matmul(V::row_major(x, B_, width, width), V::row_major(W.values.data(), width, n.units, n.units),
               n.bias >= 0 ? weight(*file_, n.bias).data() : nullptr, MatrixView<float>::row_major(s.y.data(), B_, n.units, n.units),
               Accumulate::No);
        activate(n.activation, s.y, n.units, s.z);
        x = s.y.data();
        width = n.units;
      }
    }
    out_.values.assign(x, x + B_ * width);
    ++steps_;
    return out_;
  }

  void reset() override {
    steps_ = 0;
    for (Step& s : plan_) {
      if (s.node->kind != Kind::LSTM) continue;
      if (!s.h0.empty()) {
        s.h = s.h0;
        s.c = s.c0;
      } else {
        std::fill(s.h.begin(), s.h.end(), 0.f);
        std::fill(s.c.begin(), s.c.end(), 0.f);
      }
    }
  }

  int64_t batch() const override { return B_; }
  int64_t input_size() const override { return input_size_; }

 private:
  struct Step {
    const Node* node = nullptr;
    std::shared_ptr<const LSTMPackedWeights<float>> weights;  // shared with the model, kept alive
    std::unique_ptr<LSTMStream<float>> lstm;                 // an LSTM's one-step path
    std::vector<float> h, c, h0, c0;          // an LSTM's state; h0, c0: a stateful LSTM's starting state
    std::vector<float> y;                     // the output of a Dense, Activation or Embedding
    std::vector<float> z;                     // scratch of a softmax
  };
  std::shared_ptr<const ModelFile> file_;  // kept alive: it outlives the Model the stream came from
  int64_t B_;
  int64_t input_size_ = 0;
  bool embedding_first_ = false;
  std::vector<Step> plan_;
  Index steps_ = 0;  // steps since the last reset
  Tensor out_;
};

std::unique_ptr<runtime::StreamEngine> Engine::stream(int64_t batch) const {
  return std::make_unique<Stream>(*this, batch);
}

}  // namespace

std::unique_ptr<runtime::Engine> make_engine(std::shared_ptr<const runtime::ModelFile> file) {
  return std::make_unique<Engine>(std::move(file));
}

void engine_set_num_threads(int n) { set_num_threads(n); }
int engine_num_threads() { return max_threads(); }

LSTMFAST_NAMESPACE_END  // lstmfast
