// model_file.cpp — reading a saved model (model_file.h): the zip archive, the .npy weights and
// the Keras-style config, checked at every step so that a damaged or foreign file is an Error
// that says what is wrong, never a crash.
#include "model_file.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace lstmfast::runtime {

using json = nlohmann::json;

namespace {

constexpr int kFormatVersion = 1;  // saving/native.py FORMAT_VERSION

// ---------------------------------------------------------------------------- the archive

uint16_t u16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t u32(const unsigned char* p) { return uint32_t(u16(p)) | (uint32_t(u16(p + 2)) << 16); }

// The members of a zip archive whose data is stored (not compressed), as lstmfast writes it.
class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error("cannot open " + path + " (" + std::strerror(errno) + ")");
    bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    const auto* b = reinterpret_cast<const unsigned char*>(bytes_.data());
    const size_t n = bytes_.size();
    // End of central directory: 22 bytes and a comment of at most 65535, at the very end.
    size_t eocd = std::string::npos;
    for (size_t i = n >= 22 ? n - 22 : 0; n >= 22; --i) {
      if (u32(b + i) == 0x06054b50u) { eocd = i; break; }
      if (i == 0 || n - i > 22 + 65535) break;
    }
    if (eocd == std::string::npos) bad("it is not a zip archive (no end-of-directory record)");
    const uint32_t count = u16(b + eocd + 10), cd_size = u32(b + eocd + 12), cd_off = u32(b + eocd + 16);
    if (cd_off == 0xffffffffu || count == 0xffffu) bad("it is a zip64 archive (over 2 GiB), which the C++ runtime does not read");
    if (size_t(cd_off) + cd_size > eocd) bad("its central directory lies outside the file");
    size_t p = cd_off;
    for (uint32_t k = 0; k < count; ++k) {
      if (p + 46 > eocd || u32(b + p) != 0x02014b50u) bad("its central directory is damaged");
      Member m;
      m.method = u16(b + p + 10);
      m.crc = u32(b + p + 16);
      m.compressed = u32(b + p + 20);
      m.size = u32(b + p + 24);
      const size_t name_len = u16(b + p + 28), extra = u16(b + p + 30), comment = u16(b + p + 32);
      m.local = u32(b + p + 42);
      if (p + 46 + name_len > eocd) bad("its central directory is damaged");
      const std::string name(bytes_.data() + p + 46, name_len);
      members_[name] = m;
      p += 46 + name_len + extra + comment;
    }
  }

  // The bytes of member `name`, checked against the directory's size and CRC-32.
  std::string_view read(const std::string& name) const {
    const auto it = members_.find(name);
    if (it == members_.end()) bad("member '" + name + "' is missing");
    const Member& m = it->second;
    if (m.method != 0) bad("member '" + name + "' is compressed; lstmfast stores members uncompressed");
    const auto* b = reinterpret_cast<const unsigned char*>(bytes_.data());
    if (size_t(m.local) + 30 > bytes_.size() || u32(b + m.local) != 0x04034b50u)
      bad("member '" + name + "' has no valid local header");
    const size_t start = size_t(m.local) + 30 + u16(b + m.local + 26) + u16(b + m.local + 28);
    if (m.compressed != m.size || start + m.size > bytes_.size())
      bad("member '" + name + "' claims more bytes than the file holds");
    if (crc32(b + start, m.size) != m.crc) bad("member '" + name + "' is corrupted (CRC-32 mismatch)");
    return std::string_view(bytes_.data() + start, m.size);
  }

  [[noreturn]] void bad(const std::string& why) const {
    throw Error(path_ + " is not a valid lstmfast file: " + why + ".");
  }
  const std::string& path() const { return path_; }

 private:
  struct Member {
    uint16_t method = 0;
    uint32_t crc = 0, compressed = 0, size = 0, local = 0;
  };
  std::string path_;
  std::string bytes_;
  std::map<std::string, Member> members_;
};

// A little-endian float32 .npy array (format 1.0, 2.0 or 3.0; C order).
Weight read_npy(const Archive& arc, const std::string& name) {
  const std::string_view d = arc.read(name);
  const auto* b = reinterpret_cast<const unsigned char*>(d.data());
  if (d.size() < 10 || std::memcmp(d.data(), "\x93NUMPY", 6) != 0) arc.bad("member '" + name + "' is not a .npy array");
  const int major = b[6];
  size_t header_len, start;
  if (major == 1) {
    header_len = u16(b + 8);
    start = 10;
  } else if ((major == 2 || major == 3) && d.size() >= 12) {
    header_len = u32(b + 8);
    start = 12;
  } else {
    arc.bad("member '" + name + "' has .npy version " + std::to_string(major));
  }
  if (start + header_len > d.size()) arc.bad("member '" + name + "' has a truncated .npy header");
  const std::string header(d.substr(start, header_len));
  const auto field = [&](const std::string& key) {
    const size_t k = header.find("'" + key + "':");
    if (k == std::string::npos) arc.bad("member '" + name + "' has no '" + key + "' in its .npy header");
    size_t v = k + key.size() + 3;
    while (v < header.size() && header[v] == ' ') ++v;
    return v;
  };
  size_t v = field("descr");
  const size_t q = header.find('\'', v + 1);
  const std::string descr = q == std::string::npos ? "" : header.substr(v + 1, q - v - 1);
  if (descr != "<f4")
    arc.bad("weight '" + name + "' has dtype " + descr + "; the C++ runtime runs float32 models (save the model "
            "with dtype float32)");
  if (header.compare(field("fortran_order"), 5, "False") != 0) arc.bad("weight '" + name + "' is in Fortran order");
  v = field("shape");
  const size_t close = header.find(')', v);
  if (header[v] != '(' || close == std::string::npos) arc.bad("member '" + name + "' has no shape");
  Weight w;
  std::stringstream dims(header.substr(v + 1, close - v - 1));
  std::string item;
  int64_t count = 1;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    const int64_t n = std::stoll(item);
    if (n < 0 || (n > 0 && count > (int64_t(1) << 40) / n)) arc.bad("member '" + name + "' has an impossible shape");
    w.shape.push_back(n);
    count *= n;
  }
  const size_t data = start + header_len;
  if (d.size() - data != size_t(count) * sizeof(float))
    arc.bad("member '" + name + "' holds " + std::to_string(d.size() - data) + " bytes of values, its shape says " +
            std::to_string(count * 4));
  w.values.resize(size_t(count));
  std::memcpy(w.values.data(), d.data() + data, size_t(count) * sizeof(float));
  return w;
}

// ---------------------------------------------------------------------------- the config

const std::map<std::string, Act>& activation_names() {
  static const std::map<std::string, Act> names = {
      {"tanh", Act::Tanh},       {"relu", Act::Relu},       {"sigmoid", Act::Sigmoid},
      {"linear", Act::Linear},   {"hard_sigmoid", Act::HardSigmoid}, {"softmax", Act::Softmax}};
  return names;
}

// The Keras classes the runtime runs, and the kind of node each call becomes.
const std::map<std::string, Kind>& layer_kinds() {
  static const std::map<std::string, Kind> kinds = {
      {"InputLayer", Kind::Input}, {"LSTM", Kind::LSTM}, {"Bidirectional", Kind::Bidirectional},
      {"Dense", Kind::Dense}, {"TimeDistributed", Kind::TimeDistributedDense}, {"Embedding", Kind::Embedding},
      {"RepeatVector", Kind::RepeatVector}, {"Dropout", Kind::Identity}, {"SpatialDropout1D", Kind::Identity},
      {"GaussianNoise", Kind::Identity}, {"GaussianDropout", Kind::Identity}, {"AlphaDropout", Kind::Identity},
      {"ActivityRegularization", Kind::Identity}, {"Activation", Kind::Activation}, {"Masking", Kind::Masking},
      {"Flatten", Kind::Flatten}, {"GlobalMaxPooling1D", Kind::GlobalMaxPooling1D},
      {"GlobalAveragePooling1D", Kind::GlobalAveragePooling1D}, {"Concatenate", Kind::Concatenate},
      {"Add", Kind::Add}, {"Subtract", Kind::Subtract}, {"Multiply", Kind::Multiply}, {"Average", Kind::Average},
      {"Maximum", Kind::Maximum}, {"Minimum", Kind::Minimum}, {"Attention", Kind::Attention}};
  return kinds;
}

bool is_merge(Kind k) { return k >= Kind::Concatenate && k <= Kind::Minimum; }

const char* kSupported =
    "InputLayer, LSTM, Bidirectional(LSTM), Dense, TimeDistributed(Dense), Embedding, RepeatVector, Dropout "
    "(and the other layers that do nothing at inference), Activation, Masking, Flatten, GlobalMaxPooling1D, "
    "GlobalAveragePooling1D, Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Attention (dot scores)";

class ConfigReader {
 public:
  ConfigReader(const Archive& arc, ModelFile& out) : arc_(arc), out_(out) {}

  // The activation named by a config entry (a name, or {"class_name", "config"}).
  Act activation(const json& layer, const json& value, const std::vector<Act>& allowed) {
    std::string name = "linear";
    if (value.is_string()) name = value.get<std::string>();
    else if (value.is_object() && value.contains("config") && value["config"].is_object() &&
             value["config"].contains("name"))
      name = value["config"]["name"].get<std::string>();
    else if (!value.is_null()) unsupported(layer, "its activation is not a named function");
    const auto it = activation_names().find(name);
    if (it == activation_names().end() || std::find(allowed.begin(), allowed.end(), it->second) == allowed.end())
      unsupported(layer, "activation '" + name + "' is not one the C++ runtime computes here");
    return it->second;
  }

  [[noreturn]] void unsupported(const json& layer, const std::string& why) {
    throw Error(arc_.path() + ": layer '" + layer_name(layer) + "' (" + layer.value("class_name", std::string("?")) +
                ") cannot run in the C++ runtime: " + why + ".");
  }

  static std::string layer_name(const json& layer) {
    const json& c = layer.contains("config") ? layer["config"] : layer;
    return c.is_object() && c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>()
                                                                         : layer.value("name", std::string("?"));
  }

  // The next weight in get_weights() order, which must be `owner`/`var` of `shape`.
  int take(const std::string& owner, const std::string& var, std::vector<int64_t> shape) {
    if (next_ >= out_.weights.size())
      arc_.bad("its weight list ends before weight '" + owner + "/" + var + "'");
    const Weight& w = out_.weights[next_];
    const std::string want = owner + "/" + var, tail = "/" + var;
    const bool named = w.path == want || (w.path.size() > tail.size() &&
                                          w.path.compare(w.path.size() - tail.size(), tail.size(), tail) == 0);
    if (!named)
      arc_.bad("weight " + std::to_string(next_) + " is '" + w.path + "', where the config asks for '" + want + "'");
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] < 0 && i < w.shape.size()) shape[i] = w.shape[i];
    if (w.shape != shape)
      arc_.bad("weight '" + w.path + "' has shape " + shape_str(w.shape) + ", the config says " + shape_str(shape));
    return int(next_++);
  }

  LSTMOptions lstm(const json& layer, int64_t features) {
    const json& c = layer["config"];
    LSTMOptions o;
    o.units = c.at("units").get<int64_t>();
    o.activation = activation(layer, c.value("activation", json("tanh")), {Act::Tanh, Act::Relu, Act::Sigmoid, Act::Linear});
    o.recurrent_activation = activation(layer, c.value("recurrent_activation", json("sigmoid")),
                                        {Act::Sigmoid, Act::HardSigmoid});
    o.return_sequences = c.value("return_sequences", false);
    o.return_state = c.value("return_state", false);
    o.go_backwards = c.value("go_backwards", false);
    o.stateful = c.value("stateful", false);
    o.zero_output_for_mask = c.value("zero_output_for_mask", false);
    const std::string name = layer_name(layer);
    o.kernel = take(name, "kernel", {features, 4 * o.units});
    o.recurrent_kernel = take(name, "recurrent_kernel", {o.units, 4 * o.units});
    if (c.value("use_bias", true)) o.bias = take(name, "bias", {4 * o.units});
    return o;
  }

  // A node for one call of `layer` on inputs of `shapes` (−1 where unknown); fills its options
  // and output shapes.
  Node node(const json& layer, const std::vector<std::vector<int64_t>>& shapes, const std::vector<bool>& masked,
            std::vector<std::vector<int64_t>>& out_shapes, const json* kwargs) {
    Node n;
    n.class_name = layer.value("class_name", std::string());
    n.name = layer_name(layer);
    const json& c = layer["config"];
    const std::string& k = n.class_name;
    for (const auto& t : shapes)
      if (t.empty()) unsupported(layer, "an input has no shape (not even a batch axis)");
    const auto& s = shapes.at(0);
    const bool any_mask = std::find(masked.begin(), masked.end(), true) != masked.end();
    const auto need_rank = [&](size_t rank, const char* what) {
      if (s.size() != rank) unsupported(layer, std::string("it expects ") + what + ", its input has shape " + shape_str(s));
    };
    const auto features = [&]() {
      if (s.back() < 0) unsupported(layer, "its input has no known number of features");
      return s.back();
    };
    n.output_masked = {false};
    if (k == "LSTM") {
      need_rank(3, "(batch, timesteps, features)");
      n.kind = Kind::LSTM;
      n.lstm = lstm(layer, features());
      const int64_t H = n.lstm.units;
      out_shapes = {n.lstm.return_sequences ? std::vector<int64_t>{s[0], s[1], H} : std::vector<int64_t>{s[0], H}};
      n.output_masked = {masked[0] && n.lstm.return_sequences};
      if (n.lstm.return_state) {
        out_shapes.push_back({s[0], H});
        out_shapes.push_back({s[0], H});
        n.output_masked = {n.output_masked[0], false, false};
      }
    } else if (k == "Bidirectional") {
      need_rank(3, "(batch, timesteps, features)");
      n.kind = Kind::Bidirectional;
      if (!c.contains("layer") || c["layer"].value("class_name", std::string()) != "LSTM")
        unsupported(layer, "it wraps a layer other than LSTM");
      n.merge_mode = c.value("merge_mode", json(nullptr)).is_string() ? c["merge_mode"].get<std::string>() : "";
      if (n.merge_mode != "concat" && n.merge_mode != "sum" && n.merge_mode != "ave" && n.merge_mode != "mul")
        unsupported(layer, "merge_mode '" + n.merge_mode + "' (concat, sum, ave and mul run)");
      n.lstm = lstm(c["layer"], features());
      json back = c.contains("backward_layer") ? c["backward_layer"] : json();
      if (back.is_null()) unsupported(layer, "its config has no backward_layer");
      n.lstm_backward = lstm(back, features());
      const int64_t H = n.lstm.units, width = n.merge_mode == "concat" ? H + n.lstm_backward.units : H;
      out_shapes = {n.lstm.return_sequences ? std::vector<int64_t>{s[0], s[1], width} : std::vector<int64_t>{s[0], width}};
      n.output_masked = {masked[0] && n.lstm.return_sequences};
      if (n.lstm.return_state) {
        for (int i = 0; i < 4; ++i) out_shapes.push_back({s[0], i < 2 ? H : n.lstm_backward.units});
        n.output_masked = {n.output_masked[0], false, false, false, false};
      }
    } else if (k == "Dense" || k == "TimeDistributed") {
      const json* dense = &layer;
      if (k == "TimeDistributed") {
        if (!c.contains("layer") || c["layer"].value("class_name", std::string()) != "Dense")
          unsupported(layer, "it wraps a layer other than Dense");
        dense = &c["layer"];
        need_rank(3, "(batch, timesteps, features)");
        n.kind = Kind::TimeDistributedDense;
      } else {
        n.kind = Kind::Dense;
        if (s.size() < 2) unsupported(layer, "its input has no feature axis");
      }
      const json& dc = (*dense)["config"];
      n.units = dc.at("units").get<int64_t>();
      n.activation = activation(*dense, dc.value("activation", json("linear")),
                                {Act::Linear, Act::Relu, Act::Sigmoid, Act::Tanh, Act::HardSigmoid, Act::Softmax});
      const std::string name = layer_name(*dense);
      n.kernel = take(name, "kernel", {features(), n.units});
      if (dc.value("use_bias", true)) n.bias = take(name, "bias", {n.units});
      out_shapes = {s};
      out_shapes[0].back() = n.units;
      n.output_masked = {masked[0]};
    } else if (k == "Embedding") {
      n.kind = Kind::Embedding;
      n.input_dim = c.at("input_dim").get<int64_t>();
      n.units = c.at("output_dim").get<int64_t>();
      n.mask_zero = c.value("mask_zero", false);
      n.kernel = take(n.name, "embeddings", {n.input_dim, n.units});
      out_shapes = {s};
      out_shapes[0].push_back(n.units);
      n.output_masked = {n.mask_zero};
    } else if (k == "RepeatVector") {
      need_rank(2, "(batch, features)");
      n.kind = Kind::RepeatVector;
      n.units = c.at("n").get<int64_t>();
      out_shapes = {{s[0], n.units, s[1]}};
    } else if (layer_kinds().at(k) == Kind::Identity) {
      n.kind = Kind::Identity;
      out_shapes = {s};
      n.output_masked = {masked[0]};
    } else if (k == "Activation") {
      n.kind = Kind::Activation;
      n.activation = activation(layer, c.value("activation", json("linear")),
                                {Act::Linear, Act::Relu, Act::Sigmoid, Act::Tanh, Act::HardSigmoid, Act::Softmax});
      out_shapes = {s};
      n.output_masked = {masked[0]};
    } else if (k == "Masking") {
      n.kind = Kind::Masking;
      n.mask_value = c.value("mask_value", 0.0f);
      need_rank(3, "(batch, timesteps, features)");
      out_shapes = {s};
      n.output_masked = {true};
    } else if (k == "Flatten") {
      n.kind = Kind::Flatten;
      int64_t size = 1;
      for (size_t i = 1; i < s.size(); ++i) size = (s[i] < 0 || size < 0) ? -1 : size * s[i];
      out_shapes = {{s[0], size}};
    } else if (k == "GlobalMaxPooling1D" || k == "GlobalAveragePooling1D") {
      need_rank(3, "(batch, timesteps, features)");
      if (c.value("keepdims", false) || c.value("data_format", json("channels_last")) != json("channels_last"))
        unsupported(layer, "keepdims=True or channels_first");
      n.kind = k == "GlobalMaxPooling1D" ? Kind::GlobalMaxPooling1D : Kind::GlobalAveragePooling1D;
      out_shapes = {{s[0], s[2]}};
    } else if (k == "Attention") {
      // S = Q·Kᵀ (× scale), A = softmax_j(S) with hidden positions − 1e9, O = A·V
      n.kind = Kind::Attention;
      if (c.value("score_mode", std::string("dot")) != "dot") unsupported(layer, "score_mode 'concat' (dot runs)");
      if (shapes.size() != 2 && shapes.size() != 3) unsupported(layer, "it is called on other than [query, value(, key)]");
      for (const auto& t : shapes)
        if (t.size() != 3) unsupported(layer, "its inputs are not (batch, steps, features)");
      const auto& v = shapes[1];
      const auto& key = shapes.size() > 2 ? shapes[2] : shapes[1];
      if (s.back() >= 0 && key.back() >= 0 && s.back() != key.back()) unsupported(layer, "query and key widths differ");
      if (c.value("use_scale", false)) n.kernel = take(n.name, "scale", {});
      if (kwargs) {
        if (kwargs->value("return_attention_scores", false)) unsupported(layer, "return_attention_scores");
        n.causal = kwargs->value("use_causal_mask", false);
      }
      out_shapes = {{s[0], s[1], v[2]}};
      n.output_masked = {masked[0]};
    } else {  // a merge (index_weights refused every other class)
      n.kind = layer_kinds().at(k);
      if (any_mask && n.kind != Kind::Concatenate) unsupported(layer, "a mask reaches this merge");
      n.output_masked = {any_mask};  // Concatenate: the OR of its inputs' masks
      if (shapes.size() < 2 || (n.kind == Kind::Subtract && shapes.size() != 2))
        unsupported(layer, "it needs " + std::string(n.kind == Kind::Subtract ? "two" : "two or more") + " inputs");
      for (const auto& t : shapes)
        if (t.size() != s.size()) unsupported(layer, "its inputs differ in rank (broadcasting does not run here)");
      out_shapes = {s};
      if (n.kind == Kind::Concatenate) {
        const int64_t axis = c.value("axis", -1);
        n.axis = int(axis < 0 ? int64_t(s.size()) + axis : axis);
        if (n.axis != int(s.size()) - 1) unsupported(layer, "it joins on an axis other than the last");
        for (size_t i = 1; i < shapes.size(); ++i)
          out_shapes[0].back() = (out_shapes[0].back() < 0 || shapes[i].back() < 0) ? -1
                                                                                     : out_shapes[0].back() + shapes[i].back();
      }
    }
    n.outputs = int(out_shapes.size());
    return n;
  }

  // ----- models -----

  // A shape list of the config, −1 for its nulls.
  static std::vector<int64_t> dims(const json& list) {
    std::vector<int64_t> s;
    for (const auto& d : list) s.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
    return s;
  }

  static std::vector<int64_t> batch_shape(const json& c) {
    for (const char* key : {"batch_shape", "batch_input_shape"})
      if (c.contains(key) && c[key].is_array()) return dims(c[key]);
    return {};
  }

  int add_input(const std::string& name, std::vector<int64_t> shape) {
    Node n;
    n.kind = Kind::Input;
    n.class_name = "InputLayer";
    n.name = name;
    n.shape = std::move(shape);
    n.output_masked = {false};
    out_.nodes.push_back(n);
    shapes_.push_back({n.shape});
    return int(out_.nodes.size()) - 1;
  }

  // How many weights a layer holds, in get_weights() order (0 for layers the runtime refuses:
  // those stop the reading anyway).
  static size_t weight_count(const json& layer) {
    const std::string k = layer.value("class_name", std::string());
    const json& c = layer.contains("config") ? layer["config"] : json::object();
    if (k == "LSTM") return 2 + (c.value("use_bias", true) ? 1 : 0);
    if (k == "Dense") return 1 + (c.value("use_bias", true) ? 1 : 0);
    if (k == "Embedding") return 1;
    if (k == "TimeDistributed" && c.contains("layer")) return weight_count(c["layer"]);
    if (k == "Attention") return (c.value("use_scale", false) ? 1 : 0) + (c.value("score_mode", std::string("dot")) == "concat" ? 1 : 0);
    if (k == "Bidirectional" && c.contains("layer"))
      return weight_count(c["layer"]) + weight_count(c.contains("backward_layer") ? c["backward_layer"] : c["layer"]);
    return 0;
  }

  // Where each layer's weights start: layers hold theirs in the order the config lists them,
  // and a layer called several times (a shared layer) uses the same ones at every call.
  void index_weights(const json& layers) {
    size_t at = 0;
    for (const auto& layer : layers) {
      if (!layer_kinds().count(layer.value("class_name", std::string())))
        unsupported(layer, std::string("the C++ runtime runs ") + kSupported);
      first_[layer.value("name", layer_name(layer))] = at;
      at += weight_count(layer);
    }
    if (at != out_.weights.size())
      arc_.bad("it holds " + std::to_string(out_.weights.size()) + " weights, its layers " + std::to_string(at));
  }

  int add_node(const json& layer, const std::vector<Ref>& inputs, const json* kwargs = nullptr) {
    next_ = first_.at(layer.value("name", layer_name(layer)));
    std::vector<std::vector<int64_t>> in_shapes, out_shapes;
    std::vector<bool> masked;
    for (const Ref& r : inputs) {
      in_shapes.push_back(shapes_.at(r.first).at(r.second));
      masked.push_back(out_.nodes[r.first].output_masked.at(r.second));
    }
    Node n = node(layer, in_shapes, masked, out_shapes, kwargs);
    n.inputs = inputs;
    if (n.kind == Kind::LSTM || n.kind == Kind::Bidirectional) {
      const size_t states = inputs.size() - 1, want = n.kind == Kind::LSTM ? 2 : 4;
      if (states != 0 && states != want) unsupported(layer, "its initial_state is not " + std::to_string(want) + " tensors");
    } else if (!is_merge(n.kind) && n.kind != Kind::Attention && inputs.size() != 1) {
      unsupported(layer, "it is called on " + std::to_string(inputs.size()) + " tensors");
    }
    out_.nodes.push_back(std::move(n));
    shapes_.push_back(out_shapes);
    return int(out_.nodes.size()) - 1;
  }

  void sequential(const json& c) {
    const json& layers = c.at("layers");
    std::vector<int64_t> shape = c.contains("build_input_shape") ? dims(c["build_input_shape"]) : std::vector<int64_t>();
    size_t first = 0;
    if (!layers.empty() && layers[0].value("class_name", std::string()) == "InputLayer") {
      shape = batch_shape(layers[0]["config"]);
      first = 1;
    } else if (!layers.empty() && batch_shape(layers[0]["config"]).size()) {
      shape = batch_shape(layers[0]["config"]);
    }
    if (shape.empty()) arc_.bad("its Sequential config gives no input shape (the model was never built)");
    index_weights(layers);
    Ref x{add_input(first ? layer_name(layers[0]) : "input_layer", shape), 0};
    out_.inputs = {x.first};
    for (size_t i = first; i < layers.size(); ++i) {
      const int k = add_node(layers[i], {x});
      if (out_.nodes[k].outputs != 1) unsupported(layers[i], "return_state in a Sequential model");
      x = {k, 0};
    }
    out_.outputs = {x};
  }

  // The tensors named in a call's args (nested lists) and its initial_state keyword.
  static void collect(const json& v, std::vector<json>& out) {
    if (v.is_array()) {
      for (const auto& e : v) collect(e, out);
    } else if (v.is_object() && v.value("class_name", std::string()) == "__keras_tensor__") {
      out.push_back(v.at("config").at("keras_history"));
    }
  }

  void functional(const json& c) {
    const json& layers = c.at("layers");
    index_weights(layers);
    std::map<std::pair<std::string, int>, int> call_node;  // (layer, call) -> node
    struct Call { const json* layer; int index; std::vector<json> history; json kwargs; };
    std::vector<Call> pending;
    for (const auto& layer : layers) {
      const std::string name = layer.value("name", layer_name(layer));
      if (layer.value("class_name", std::string()) == "InputLayer") {
        call_node[{name, 0}] = add_input(name, batch_shape(layer["config"]));
        continue;
      }
      const json& calls = layer.contains("inbound_nodes") ? layer["inbound_nodes"] : json::array();
      for (size_t i = 0; i < calls.size(); ++i) {
        std::vector<json> refs;  // keras_history [layer, call, output] of each input tensor
        collect(calls[i].contains("args") ? calls[i]["args"] : calls[i], refs);
        const json kwargs = calls[i].value("kwargs", json::object());
        for (const auto& [key, value] : kwargs.items()) {
          std::vector<json> extra;
          collect(value, extra);
          if (extra.empty()) continue;
          if (key != "initial_state") unsupported(layer, "it is called with a tensor as `" + key + "`");
          refs.insert(refs.end(), extra.begin(), extra.end());
        }
        pending.push_back(Call{&layer, int(i), std::move(refs), kwargs});
      }
    }
    // Nodes in an order where inputs come first (a shared layer's later calls may read layers
    // listed after it).
    while (!pending.empty()) {
      bool progress = false;
      for (auto it = pending.begin(); it != pending.end();) {
        std::vector<Ref> inputs;
        bool ready = true;
        for (const json& h : it->history) {
          const auto found = call_node.find({h.at(0).get<std::string>(), h.at(1).get<int>()});
          if (found == call_node.end()) { ready = false; break; }
          inputs.push_back({found->second, h.at(2).get<int>()});
        }
        if (!ready) { ++it; continue; }
        for (const Ref& r : inputs)
          if (r.second >= int(shapes_[r.first].size())) arc_.bad("a call reads an output its layer does not have");
        call_node[{it->layer->value("name", layer_name(*it->layer)), it->index}] = add_node(*it->layer, inputs, &it->kwargs);
        it = pending.erase(it);
        progress = true;
      }
      if (!progress) arc_.bad("its functional config names layers it does not define");
    }
    const auto refs = [&](const json& list) {
      std::vector<Ref> out;
      if (list.is_array() && list.size() == 3 && list[0].is_string()) {
        out.push_back({call_node.at({list[0].get<std::string>(), list[1].get<int>()}), list[2].get<int>()});
      } else {
        for (const auto& e : list) out.push_back({call_node.at({e.at(0).get<std::string>(), e.at(1).get<int>()}), e.at(2).get<int>()});
      }
      return out;
    };
    for (const Ref& r : refs(c.at("input_layers"))) out_.inputs.push_back(r.first);
    out_.outputs = refs(c.at("output_layers"));
  }

  void finish() {
    for (int i : out_.inputs) out_.input_specs.push_back({out_.nodes[i].name, out_.nodes[i].shape});
    for (const Ref& r : out_.outputs)
      out_.output_specs.push_back({out_.nodes[r.first].name, shapes_[r.first][r.second]});
  }

 private:
  const Archive& arc_;
  ModelFile& out_;
  size_t next_ = 0;
  std::map<std::string, size_t> first_;  // per layer name: its first weight
  std::vector<std::vector<std::vector<int64_t>>> shapes_;  // per node, per output
};

}  // namespace

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + (s[i] < 0 ? std::string("None") : std::to_string(s[i]));
  return out + (s.size() == 1 ? ",)" : ")");
}

uint32_t crc32(const unsigned char* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;  // reflected 0x04c11db7
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

ModelFile read_model_file(const std::string& path) {
  Archive arc(path);
  json header;
  try {
    const std::string_view text = arc.read("lstmfast.json");
    header = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    arc.bad(std::string("its header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object() || header.value("format", json()) != json("lstmfast")) arc.bad("its header does not name the lstmfast format");
  if (!header.contains("format_version") || !header["format_version"].is_number_integer())
    arc.bad("its header has no format version");
  if (header["format_version"].get<int>() > kFormatVersion)
    throw Error(path + " was written in lstmfast format version " + std::to_string(header["format_version"].get<int>()) +
                "; this library reads versions up to " + std::to_string(kFormatVersion) + ". Upgrade lstmfast to load it.");
  if (header.value("kind", json()) != json("model"))
    arc.bad("it holds only weights (written by save_weights); save the whole model with model.save(path)");
  ModelFile out;
  try {
    const json& specs = header.at("weights");
    for (size_t i = 0; i < specs.size(); ++i) {
      std::string number = std::to_string(i);
      number.insert(0, number.size() < 5 ? 5 - number.size() : 0, '0');
      Weight w = read_npy(arc, "weights/" + number + ".npy");
      w.path = specs[i].value("path", std::string());
      std::vector<int64_t> shape = specs[i].value("shape", std::vector<int64_t>());
      if (shape != w.shape)
        arc.bad("weight " + std::to_string(i) + " (" + w.path + ") has shape " + shape_str(w.shape) + ", its header says " +
                shape_str(shape));
      out.weights.push_back(std::move(w));
    }
    const json& config = header.at("config");
    const std::string cls = config.value("class_name", std::string("Sequential"));
    const json& c = config.contains("config") ? config["config"] : config;
    out.name = c.value("name", std::string("model"));
    ConfigReader reader(arc, out);
    out.sequential = cls == "Sequential";
    if (cls == "Sequential") reader.sequential(c);
    else if (cls == "Functional" || cls == "Model") reader.functional(c);
    else arc.bad("its model class '" + cls + "' is neither Sequential nor Functional");
    reader.finish();
  } catch (const json::exception& e) {
    arc.bad(std::string("its config is not what lstmfast writes (") + e.what() + ")");
  } catch (const std::out_of_range& e) {
    arc.bad(std::string("its config refers to a layer or output it does not define (") + e.what() + ")");
  } catch (const std::invalid_argument& e) {
    arc.bad(std::string("a value in it is not a number (") + e.what() + ")");
  }
  return out;
}

}  // namespace lstmfast::runtime
