// model_file.h — a saved lstmfast model as the C++ runtime runs it: the graph of layer calls
// (nodes) read from the file's Keras-style config, with the weights each one uses.
//
// The file (saving/native.py) is a zip archive of stored members: lstmfast.json (format,
// version, config, weight list) and weights/NNNNN.npy, one per weight in get_weights() order.
// Nothing here depends on the instruction set; the engines (engine.cpp, one per instruction
// set) run what this describes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lstmfast/lstmfast.hpp"

namespace lstmfast::runtime {

// The activations the runtime computes, by their Keras names (codes shared with the kernels'
// Activation enum for the first four).
enum class Act : int { Tanh = 0, Relu = 1, Sigmoid = 2, Linear = 3, HardSigmoid = 4, Softmax = 5 };

enum class Kind {
  Input, LSTM, Bidirectional, Dense, TimeDistributedDense, Embedding, RepeatVector, Identity,
  Activation, Masking, Flatten, GlobalMaxPooling1D, GlobalAveragePooling1D,
  Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Attention,
};

struct Weight {
  std::string path;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

struct LSTMOptions {
  int64_t units = 0;
  Act activation = Act::Tanh, recurrent_activation = Act::Sigmoid;
  bool return_sequences = false, return_state = false, go_backwards = false, stateful = false;
  bool zero_output_for_mask = false;
  int kernel = -1, recurrent_kernel = -1, bias = -1;  // indices into ModelFile::weights
};

// An output of a node: (node index, which output).
using Ref = std::pair<int, int>;

struct Node {
  Kind kind = Kind::Identity;
  std::string name, class_name;
  std::vector<Ref> inputs;        // for an LSTM: x, then h0 and c0 when given initial_state
  int outputs = 1;
  std::vector<bool> output_masked;  // whether each output carries a mask
  // options of the kinds that have them
  LSTMOptions lstm, lstm_backward;       // LSTM; Bidirectional (forward, backward)
  std::string merge_mode;                // Bidirectional: concat | sum | ave | mul
  Act activation = Act::Linear;          // Dense, TimeDistributedDense, Activation
  int kernel = -1, bias = -1;            // Dense; Embedding: kernel = the table
  int64_t units = 0;                     // Dense: units; Embedding: output_dim; RepeatVector: n
  int64_t input_dim = 0;                 // Embedding
  bool mask_zero = false;                // Embedding
  float mask_value = 0;                  // Masking
  int axis = -1;                         // Concatenate
  bool causal = false;                   // Attention: use_causal_mask (kernel = the scale, or −1)
  std::vector<int64_t> shape;            // Input: the batch shape (−1 where unknown)
};

struct ModelFile {
  std::string name;
  bool sequential = false;  // a Sequential model (streams run those)
  std::vector<Weight> weights;
  std::vector<Node> nodes;   // in an order where every node comes after its inputs
  std::vector<int> inputs;   // the Input nodes, in the model's input order
  std::vector<Ref> outputs;
  std::vector<TensorSpec> input_specs, output_specs;
};

// Reads and checks a model file; throws Error naming the file and what is wrong.
ModelFile read_model_file(const std::string& path);

// The CRC-32 of zip archives (ISO-HDLC), for checking members.
uint32_t crc32(const unsigned char* data, size_t n);

// A shape as Python prints it: (None, 50, 8), with None where any size goes.
std::string shape_str(const std::vector<int64_t>& s);

}  // namespace lstmfast::runtime
