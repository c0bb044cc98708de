// engine.h — what the C++ runtime's front (model.cpp) asks of the engine built for one
// instruction set (engine.cpp, compiled once per set into lstmfast::isa_<set>).
#pragma once

#include <memory>
#include <vector>

#include "lstmfast/lstmfast.hpp"
#include "model_file.h"

namespace lstmfast::runtime {

class StreamEngine {
 public:
  virtual ~StreamEngine() = default;
  virtual const Tensor& step(const float* x_t) = 0;
  virtual void reset() = 0;
  virtual int64_t batch() const = 0;
  virtual int64_t input_size() const = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::vector<Tensor> predict(const std::vector<TensorView>& inputs, int64_t batch_size) = 0;
  virtual void reset_states() = 0;
  virtual std::unique_ptr<StreamEngine> stream(int64_t batch) const = 0;
};

}  // namespace lstmfast::runtime

// Each instruction set's engine: make_engine, and the thread count of its kernels.
#define LSTMFAST_DECLARE_ENGINE(ns)                                                                \
  namespace lstmfast {                                                                             \
  inline namespace ns {                                                                            \
  std::unique_ptr<runtime::Engine> make_engine(std::shared_ptr<const runtime::ModelFile> file);   \
  void engine_set_num_threads(int n);                                                              \
  int engine_num_threads();                                                                        \
  }                                                                                                \
  }
