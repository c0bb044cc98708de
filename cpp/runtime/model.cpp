// model.cpp — the public API (lstmfast/lstmfast.hpp): reads the model file, picks the kernels'
// instruction set as Python's lstmfast._core does, and hands the work to that set's engine.
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../cpu.h"
#include "engine.h"

#ifdef LSTMFAST_ENGINE_baseline
LSTMFAST_DECLARE_ENGINE(isa_baseline)
#endif
#ifdef LSTMFAST_ENGINE_avx2
LSTMFAST_DECLARE_ENGINE(isa_avx2)
#endif
#ifdef LSTMFAST_ENGINE_avx512
LSTMFAST_DECLARE_ENGINE(isa_avx512)
#endif
#ifdef LSTMFAST_ENGINE_native
LSTMFAST_DECLARE_ENGINE(isa_native)
#endif

#ifndef LSTMFAST_VERSION
#define LSTMFAST_VERSION "unknown"
#endif

namespace lstmfast {

namespace {

using Factory = std::unique_ptr<runtime::Engine> (*)(std::shared_ptr<const runtime::ModelFile>);

struct Build {
  const char* isa;
  Factory make;
  void (*set_threads)(int);
  int (*threads)();
};

// The instruction sets built into this library, best first (Python's _core._PREFERENCE).
const std::vector<Build>& builds() {
// One entry per instruction set: its engine factory and thread count.
#define LSTMFAST_BUILD(isa) {#isa, isa_##isa::make_engine, isa_##isa::engine_set_num_threads, isa_##isa::engine_num_threads},
  static const std::vector<Build> list = {
#ifdef LSTMFAST_ENGINE_native
      LSTMFAST_BUILD(native)
#endif
#ifdef LSTMFAST_ENGINE_avx512
      LSTMFAST_BUILD(avx512)
#endif
#ifdef LSTMFAST_ENGINE_avx2
      LSTMFAST_BUILD(avx2)
#endif
#ifdef LSTMFAST_ENGINE_baseline
      LSTMFAST_BUILD(baseline)
#endif
  };
  return list;
#undef LSTMFAST_BUILD
}

// The build to run: LSTMFAST_ISA's when set, else the best this CPU runs.
const Build& chosen() {
  static const Build& build = [&]() -> const Build& {
    const char* env = std::getenv("LSTMFAST_ISA");
    std::string forced = env ? env : "";
    forced.erase(0, forced.find_first_not_of(" \t"));
    forced.erase(forced.find_last_not_of(" \t") + 1);
    for (char& ch : forced) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    std::string names;
    for (const Build& b : builds()) {
      names += std::string(names.empty() ? "" : ", ") + b.isa;
      if (!forced.empty()) {
        if (forced == b.isa) {
          if (forced != "native" && !cpu_supports(forced))
            throw Error("LSTMFAST_ISA=" + forced + " but this CPU does not support " + forced);
          return b;
        }
        continue;
      }
      if (std::strcmp(b.isa, "native") == 0 || cpu_supports(b.isa)) return b;
    }
    throw Error(forced.empty() ? "no kernel build of this library runs on this CPU"
                               : "LSTMFAST_ISA must be one of " + names + "; got '" + forced + "'");
  }();
  return build;
}

}  // namespace

int64_t Tensor::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct Model::Impl {
  std::shared_ptr<const runtime::ModelFile> file;
  std::unique_ptr<runtime::Engine> engine;
  const char* isa = "";
};

struct Stream::Impl {
  std::unique_ptr<runtime::StreamEngine> engine;
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  impl->file = std::make_shared<const runtime::ModelFile>(runtime::read_model_file(path));
  const Build& b = chosen();
  impl->isa = b.isa;
  try {
    impl->engine = b.make(impl->file);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": " + e.what());
  }
  return Model(std::move(impl));
}

const std::vector<TensorSpec>& Model::inputs() const { return impl_->file->input_specs; }
const std::vector<TensorSpec>& Model::outputs() const { return impl_->file->output_specs; }
const std::string& Model::name() const { return impl_->file->name; }
std::string Model::isa() const { return impl_->isa; }

std::vector<Tensor> Model::predict(const std::vector<TensorView>& inputs, int64_t batch_size) {
  try {
    return impl_->engine->predict(inputs, batch_size);
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error("predict: out of memory; give fewer rows or a smaller batch_size");
  } catch (const std::exception& e) {
    throw Error(std::string("predict: ") + e.what());
  }
}

Tensor Model::predict(const float* x, const std::vector<int64_t>& shape, int64_t batch_size) {
  if (inputs().size() != 1 || outputs().size() != 1)
    throw Error("this model has " + std::to_string(inputs().size()) + " inputs and " + std::to_string(outputs().size()) +
                " outputs; call predict with a vector of TensorView");
  return std::move(predict(std::vector<TensorView>{TensorView{x, shape}}, batch_size)[0]);
}

#ifdef LSTMFAST_HAS_SPAN
Tensor Model::predict(std::span<const float> x, const std::vector<int64_t>& shape, int64_t batch_size) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (int64_t(x.size()) != n)
    throw Error("the span holds " + std::to_string(x.size()) + " values; the shape asks for " + std::to_string(n));
  return predict(x.data(), shape, batch_size);
}
#endif

void Model::reset_states() { impl_->engine->reset_states(); }

Stream Model::stream(int64_t batch) const {
  auto impl = std::make_unique<Stream::Impl>();
  impl->engine = impl_->engine->stream(batch);
  return Stream(std::move(impl));
}

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

const Tensor& Stream::step(const float* x_t) { return impl_->engine->step(x_t); }
#ifdef LSTMFAST_HAS_SPAN
const Tensor& Stream::step(std::span<const float> x_t) {
  if (int64_t(x_t.size()) != input_size())
    throw Error("step() takes " + std::to_string(input_size()) + " values; the span holds " + std::to_string(x_t.size()));
  return step(x_t.data());
}
#endif
void Stream::reset() { impl_->engine->reset(); }
int64_t Stream::batch() const { return impl_->engine->batch(); }
int64_t Stream::input_size() const { return impl_->engine->input_size(); }

void set_num_threads(int n) {
  if (n < 1) throw Error("set_num_threads takes a positive count; got " + std::to_string(n));
  for (const Build& b : builds()) b.set_threads(n);
}

int get_num_threads() { return chosen().threads(); }

const char* version() { return LSTMFAST_VERSION; }

}  // namespace lstmfast
