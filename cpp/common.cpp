// common.cpp — the kernels' thread count.
#include "common.h"

#include <atomic>

namespace lstmfast {

namespace {
std::atomic<int> g_num_threads{1};
}

int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

}  // namespace lstmfast
