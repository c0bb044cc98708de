// lstmfast_predict — run a model saved from Python (`model.save("model.lstmfast")`) on inputs
// read from raw float32 files, without Python.
//
//   lstmfast_predict MODEL X_FILE SHAPE [X_FILE SHAPE ...] [--out PREFIX] [--batch-size N] [--stream]
//
// Each X_FILE holds one input of the model as raw little-endian float32 values, row-major
// (numpy: x.tofile(path)); SHAPE is its shape ("32,50,8"). Output k goes to PREFIX<k>.f32 the
// same way (np.fromfile), its shape and first values to the terminal. --stream feeds the
// sequences of a one-input model one time step at a time (lstmfast::Stream) and writes the
// output of every step, (T, batch, …).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <lstmfast/lstmfast.hpp>

namespace {

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) shape.push_back(std::stoll(item));
  return shape;
}

std::vector<float> read_floats(const std::string& path, int64_t count) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<float> values(static_cast<size_t>(count));
  f.read(reinterpret_cast<char*>(values.data()), std::streamsize(count * sizeof(float)));
  if (f.gcount() != std::streamsize(count * sizeof(float)) || f.peek() != EOF)
    throw std::runtime_error(path + " does not hold exactly " + std::to_string(count) + " float32 values");
  return values;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args;
  std::string out_prefix;
  int64_t batch_size = 32;
  bool stream = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--batch-size" && i + 1 < argc) batch_size = std::stoll(argv[++i]);
    else if (a == "--out" && i + 1 < argc) out_prefix = argv[++i];
    else if (a == "--stream") stream = true;
    else args.push_back(a);
  }
  if (args.size() < 3 || args.size() % 2 == 0) {
    std::cerr << "usage: " << argv[0] << " MODEL X_FILE SHAPE [X_FILE SHAPE ...] [--out PREFIX] [--batch-size N] [--stream]\n";
    return 2;
  }
  try {
    lstmfast::Model model = lstmfast::Model::load(args[0]);
    std::vector<std::vector<float>> xs;
    std::vector<lstmfast::TensorView> inputs;
    for (size_t i = 1; i + 1 < args.size(); i += 2) {
      const std::vector<int64_t> shape = parse_shape(args[i + 1]);
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      xs.push_back(read_floats(args[i], count));
      inputs.push_back({xs.back().data(), shape});
    }

    std::vector<lstmfast::Tensor> ys;
    if (!stream) {
      ys = model.predict(inputs, batch_size);
    } else {
      // (batch, T, features) fed as T steps of (batch, features); token ids (batch, T) as T steps of (batch)
      const std::vector<int64_t>& shape = inputs.at(0).shape;
      if (inputs.size() != 1 || shape.size() < 2) throw lstmfast::Error("--stream takes one input shaped (batch, timesteps, ...)");
      const int64_t B = shape[0], T = shape[1], per_step = int64_t(xs[0].size()) / (B * T);
      lstmfast::Stream s = model.stream(B);
      std::vector<float> x_t(static_cast<size_t>(B * per_step));
      lstmfast::Tensor y;
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < per_step; ++j) x_t[size_t(b * per_step + j)] = xs[0][size_t((b * T + t) * per_step + j)];
        const lstmfast::Tensor& y_t = s.step(x_t.data());
        if (t == 0) y.shape = {T, y_t.shape[0], y_t.shape[1]};
        y.values.insert(y.values.end(), y_t.values.begin(), y_t.values.end());
      }
      ys.push_back(std::move(y));
    }
    std::cout << "model " << model.name() << " (kernels: " << model.isa() << ")\n";
    for (size_t k = 0; k < ys.size(); ++k) {
      const lstmfast::Tensor& y = ys[k];
      std::cout << "output " << k << " " << shape_text(y.shape) << ":";
      for (size_t i = 0; i < std::min<size_t>(y.values.size(), 4); ++i) std::cout << " " << y.values[i];
      std::cout << (y.values.size() > 4 ? " ...\n" : "\n");
      if (!out_prefix.empty()) {
        const std::string path = out_prefix + std::to_string(k) + ".f32";
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(y.values.data()), std::streamsize(y.values.size() * sizeof(float)));
        if (!out) throw std::runtime_error("cannot write " + path);
      }
    }
  } catch (const lstmfast::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
