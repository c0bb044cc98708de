// lstmfast.hpp — lstmfast's C++ inference API: load a model saved from Python
// (`model.save("model.lstmfast")`) and run it without Python.
//
//   lstmfast::Model model = lstmfast::Model::load("model.lstmfast");
//   lstmfast::Tensor y = model.predict(x.data(), {batch, timesteps, features});
//
//   lstmfast::Stream stream = model.stream(1);     // one time step per call
//   const lstmfast::Tensor& y_t = stream.step(x_t);
//
// Inputs and outputs are float32, row-major. Token ids (a model that starts with an Embedding)
// are given as floats holding whole numbers, as Keras takes them. The results are bit for bit
// those of Python's `model.predict(x, batch_size=...)` with the same batch size on the same
// machine: both run the same kernels, built for the instruction sets this CPU has
// (`Model::isa()` says which; LSTMFAST_ISA=baseline|avx2|avx512 forces one, as in Python).
//
// Every failure — a file that is not a model, a layer the C++ runtime does not run, an input of
// the wrong shape, NaN in an input — throws lstmfast::Error with a message that says what was
// expected and what came. Build with CMake: find_package(lstmfast) and link lstmfast::lstmfast;
// `python -m lstmfast.cmake` prints the directory to give CMake as lstmfast_DIR.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#if __has_include(<span>) && __cplusplus >= 202002L
#include <span>
#define LSTMFAST_HAS_SPAN 1
#endif

#if defined(_WIN32)
#define LSTMFAST_API
#else
#define LSTMFAST_API __attribute__((visibility("default")))
#endif

namespace lstmfast {

// What every function here throws.
class LSTMFAST_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A float32 array that owns its values: shape and row-major values.
struct LSTMFAST_API Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
  int64_t size() const;  // the product of the shape
};

// A float32 array the caller owns: `data` holds size(shape) values, row-major.
struct TensorView {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

// An input or output of a model: its name and shape, −1 where any size goes (the batch, and
// the time steps of a model built for sequences of any length).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

class Stream;

class LSTMFAST_API Model {
 public:
  // Reads a model file written by lstmfast's `model.save(path)`. Throws Error when the file
  // cannot be read, is corrupted, or holds a layer the C++ runtime does not run (the message
  // names it and lists those it runs).
  static Model load(const std::string& path);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::vector<TensorSpec>& inputs() const;
  const std::vector<TensorSpec>& outputs() const;

  // The model's outputs for its inputs (one view per input, in `inputs()` order), computed in
  // batches of `batch_size` rows as Python's predict does (its default is 32 too). Several
  // threads may predict at once on a model without stateful LSTMs.
  std::vector<Tensor> predict(const std::vector<TensorView>& inputs, int64_t batch_size = 32);
  // A model with one input and one output.
  Tensor predict(const float* x, const std::vector<int64_t>& shape, int64_t batch_size = 32);
#ifdef LSTMFAST_HAS_SPAN
  Tensor predict(std::span<const float> x, const std::vector<int64_t>& shape, int64_t batch_size = 32);
#endif

  // Zero the state a `stateful=True` LSTM carries from one predict call (and batch) to the next.
  void reset_states();

  // A stream of `batch` sequences run one time step per call (class Stream).
  Stream stream(int64_t batch = 1) const;

  // The name the model was saved with, and the kernels' instruction set ("avx2", …).
  const std::string& name() const;
  std::string isa() const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Stream;
};

// A model run one time step at a time, keeping every LSTM's state (h, c) between calls and
// allocating nothing per step. For Sequential models of LSTM, Dense, Embedding, Activation and
// dropout layers; layers that need the whole sequence (go_backwards, Bidirectional,
// RepeatVector, pooling over time) are refused when the stream is made, with the reason. The
// output of step t has the bits predict gives for step t of the same sequence and batch.
class LSTMFAST_API Stream {
 public:
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  // x_t: (batch, features) values, or (batch) token ids for a model that starts with an
  // Embedding. The output (batch, …) stays valid until the next step() or reset().
  const Tensor& step(const float* x_t);
#ifdef LSTMFAST_HAS_SPAN
  const Tensor& step(std::span<const float> x_t);
#endif
  // Zero every LSTM's state (a stateful LSTM's starts from the model's carried state).
  void reset();

  int64_t batch() const;
  int64_t input_size() const;  // values per step: batch · features (batch for token ids)

  struct Impl;

 private:
  explicit Stream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Model;
};

// The kernels' thread count (default: the physical cores), as lstmfast.set_num_threads.
LSTMFAST_API void set_num_threads(int n);
LSTMFAST_API int get_num_threads();

// The library's version ("0.1.0").
LSTMFAST_API const char* version();

}  // namespace lstmfast
