// concurrent_predict MODEL X_FILE SHAPE THREADS — several threads predicting on one Model at
// once (a model without stateful LSTMs) get, every time, the bits one thread gets. Exit 0 when
// they all do, 1 when one does not, 2 on an error.
#include <atomic>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <lstmfast/lstmfast.hpp>

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " MODEL X_FILE SHAPE THREADS\n";
    return 2;
  }
  try {
    lstmfast::Model model = lstmfast::Model::load(argv[1]);
    std::vector<int64_t> shape;
    std::stringstream dims(argv[3]);
    int64_t count = 1;
    for (std::string d; std::getline(dims, d, ',');) count *= shape.emplace_back(std::stoll(d));
    std::vector<float> x(static_cast<size_t>(count));
    std::ifstream f(argv[2], std::ios::binary);
    if (!f.read(reinterpret_cast<char*>(x.data()), std::streamsize(x.size() * sizeof(float))))
      throw std::runtime_error(std::string("cannot read ") + argv[2]);
    const lstmfast::Tensor reference = model.predict(x.data(), shape, 8);
    std::atomic<int> differ{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < std::stoi(argv[4]); ++t)
      threads.emplace_back([&] {
        try {
          for (int round = 0; round < 20; ++round)
            if (model.predict(x.data(), shape, 8).values != reference.values) ++differ;
        } catch (const std::exception& e) {
          std::cerr << "error: " << e.what() << "\n";
          ++failed;
        }
      });
    for (auto& t : threads) t.join();
    std::cout << differ << " of " << 20 * threads.size() << " predictions differed\n";
    return failed ? 2 : differ ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
