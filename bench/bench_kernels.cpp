// bench_kernels.cpp — times the LSTM kernels of cpp/lstm.h directly, without Python.
//
//   bench_kernels lstm_forward  B T D H [options]    forward over a whole sequence
//   bench_kernels lstm_backward B T D H [options]    backward through time (from a training forward)
//   bench_kernels lstm_train    B T D H [options]    a training forward then the backward,
//                                                    without dx (a model's first layer)
//   bench_kernels all [options]                      both, on the six benchmark shapes
// options: --threads N (default 2)  --double (float64 instead of float32)  --seconds S (default 0.5)
//
// B batch, T steps, D input features, H units. FLOPs counted (GEMMs only):
//   forward   2·B·T·4H·(D+H)      x·W for all steps, h·U at each step
//   backward  2 × forward          dz·Wᵀ, dz·Uᵀ, and the weight gradients xᵀ·dz, hᵀ·dz
//   train     3 × forward          counted as if dx were computed, like bench/bench_lstm.py
// Times are medians of repeated calls after two warm-up calls. The fast path is compared with
// the naive reference (lstm_forward_naive: one step, one unit at a time, std:: functions); the
// naive path runs once, on the first steps only when the whole sequence would take long, and
// its rate is per FLOP, so the ratio is fair. There is no naive backward to compare with.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lstm.h"

using namespace lstmfast;

namespace {

struct Shape {
  Index B, T, D, H;
};

const Shape kShapes[] = {{32, 50, 64, 128}, {64, 100, 256, 256}, {16, 25, 512, 512},
                         {32, 25, 1024, 1024}, {1, 100, 32, 128}, {128, 30, 1, 50}};

struct Options {
  int threads = 2;
  bool use_double = false;
  double seconds = 0.5;
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of f() over at least 5 calls and `seconds`, after 2 warm-up calls.
template <typename F>
double time_median(F&& f, double seconds) {
  f();
  f();
  std::vector<double> t;
  const double start = now();
  while (t.size() < 5 || (now() - start < seconds && t.size() < 10000)) {
    const double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

const char* isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#else
  return "baseline";
#endif
}

template <typename S>
struct Problem {
  LSTMConfig cfg;
  std::vector<S> x, W, U, b, out, hT, cT;

  explicit Problem(const Shape& s) {
    cfg.B = s.B;
    cfg.T = s.T;
    cfg.D = s.D;
    cfg.H = s.H;
    std::mt19937 rng(42);
    auto fill = [&](std::vector<S>& v, size_t n, double scale) {
      std::uniform_real_distribution<double> u(-scale, scale);
      v.resize(n);
      for (auto& e : v) e = static_cast<S>(u(rng));
    };
    const double w = 1.0 / std::sqrt(static_cast<double>(s.D + s.H));
    fill(x, s.B * s.T * s.D, 1.0);
    fill(W, s.D * 4 * s.H, w);
    fill(U, s.H * 4 * s.H, w);
    fill(b, 4 * s.H, w);
    out.resize(s.B * s.T * s.H);
    hT.resize(s.B * s.H);
    cT.resize(s.B * s.H);
  }

  LSTMInputs<S> inputs() const {
    LSTMInputs<S> in;
    in.x = x.data();
    in.kernel = W.data();
    in.recurrent_kernel = U.data();
    in.bias = b.data();
    return in;
  }
};

double forward_flops(const Shape& s) { return 2.0 * s.B * s.T * 4 * s.H * (s.D + s.H); }

void print_header() {
  std::printf("%-14s %-22s %10s %9s %11s %9s %8s %12s\n", "kernel", "shape (B,T,D,H)", "fast ms",
              "GFLOP/s", "naive GF/s", "speedup", "steps", "max|Δ|");
}

void print_row(const char* kernel, const Shape& s, double ms, double gflops, double naive_gflops,
               Index naive_steps, double max_diff) {
  char shape[64];
  std::snprintf(shape, sizeof shape, "(%ld, %ld, %ld, %ld)", static_cast<long>(s.B), static_cast<long>(s.T),
                static_cast<long>(s.D), static_cast<long>(s.H));
  if (naive_gflops > 0)
    std::printf("%-14s %-22s %10.3f %9.1f %11.2f %8.1fx %8ld %12.2e\n", kernel, shape, ms, gflops, naive_gflops,
                gflops / naive_gflops, static_cast<long>(naive_steps), max_diff);
  else
    std::printf("%-14s %-22s %10.3f %9.1f %11s %9s %8s %12s\n", kernel, shape, ms, gflops, "-", "-", "-", "-");
  std::fflush(stdout);
}

template <typename S>
void bench_forward(const Shape& s, const Options& o) {
  Problem<S> p(s);
  const LSTMInputs<S> in = p.inputs();
  const double t = time_median(
      [&] { lstm_forward<S>(p.cfg, in, p.out.data(), p.hT.data(), p.cT.data(), nullptr); }, o.seconds);
  const double gflops = forward_flops(s) / t / 1e9;

  // The naive path once, on at most as many steps as take about a fifth of a second at
  // 1 GFLOP/s; the fast path's outputs of those steps must agree with it.
  const double per_step = forward_flops(s) / s.T;
  const Index steps = std::max<Index>(1, std::min<Index>(s.T, static_cast<Index>(2e8 / per_step)));
  LSTMConfig short_cfg = p.cfg;
  short_cfg.T = steps;
  std::vector<S> x_short(s.B * steps * s.D), out_naive(s.B * steps * s.H), out_fast(s.B * steps * s.H);
  for (Index bi = 0; bi < s.B; ++bi)
    std::memcpy(&x_short[bi * steps * s.D], &p.x[bi * s.T * s.D], sizeof(S) * steps * s.D);
  LSTMInputs<S> in_short = in;
  in_short.x = x_short.data();
  std::vector<S> h(s.B * s.H), c(s.B * s.H);
  const double t0 = now();
  lstm_forward_naive<S>(short_cfg, in_short, out_naive.data(), h.data(), c.data());
  const double t_naive = now() - t0;
  lstm_forward<S>(short_cfg, in_short, out_fast.data(), h.data(), c.data(), nullptr);
  double max_diff = 0;
  for (size_t i = 0; i < out_fast.size(); ++i)
    max_diff = std::max(max_diff, std::abs(static_cast<double>(out_fast[i]) - out_naive[i]));
  print_row("lstm_forward", s, t * 1e3, gflops, per_step * steps / t_naive / 1e9, steps, max_diff);
}

// Output gradients of one shape, and the gradient arrays a backward writes (dx only if asked).
template <typename S>
struct Gradients {
  std::vector<S> d_out, dx, dW, dU, db, dh0, dc0;
  LSTMGrads<S> g;
  Gradients(const Shape& s, size_t outputs, bool with_dx)
      : d_out(outputs, S(1) / static_cast<S>(outputs)), dx(with_dx ? s.B * s.T * s.D : 0),
        dW(s.D * 4 * s.H), dU(s.H * 4 * s.H), db(4 * s.H), dh0(s.B * s.H), dc0(s.B * s.H) {
    g.dx = with_dx ? dx.data() : nullptr;
    g.dkernel = dW.data();
    g.drecurrent_kernel = dU.data();
    g.dbias = db.data();
    g.dh0 = dh0.data();
    g.dc0 = dc0.data();
  }
};

template <typename S>
void bench_backward(const Shape& s, const Options& o) {
  Problem<S> p(s);
  LSTMCache<S> cache;
  lstm_forward<S>(p.cfg, p.inputs(), p.out.data(), p.hT.data(), p.cT.data(), &cache);
  Gradients<S> gr(s, p.out.size(), true);
  const double t = time_median([&] { lstm_backward<S>(cache, gr.d_out.data(), nullptr, nullptr, gr.g); },
                               o.seconds);
  print_row("lstm_backward", s, t * 1e3, 2 * forward_flops(s) / t / 1e9, 0, 0, 0);
}

template <typename S>
void bench_train(const Shape& s, const Options& o) {
  Problem<S> p(s);
  Gradients<S> gr(s, p.out.size(), false);
  const double t = time_median([&] {
    LSTMCache<S> cache;
    lstm_forward<S>(p.cfg, p.inputs(), p.out.data(), p.hT.data(), p.cT.data(), &cache);
    lstm_backward<S>(cache, gr.d_out.data(), nullptr, nullptr, gr.g);
  }, o.seconds);
  print_row("lstm_train", s, t * 1e3, 3 * forward_flops(s) / t / 1e9, 0, 0, 0);
}

template <typename S>
void run(const std::string& what, const std::vector<Shape>& shapes, const Options& o) {
  print_header();
  for (const Shape& s : shapes) {
    if (what == "lstm_forward" || what == "all") bench_forward<S>(s, o);
    if (what == "lstm_backward" || what == "all") bench_backward<S>(s, o);
    if (what == "lstm_train") bench_train<S>(s, o);
  }
}

int usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s lstm_forward|lstm_backward|lstm_train B T D H [--threads N] [--double] [--seconds S]\n"
               "       %s all [--threads N] [--double] [--seconds S]\n",
               prog, prog);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage(argv[0]);
  const std::string what = argv[1];
  if (what != "lstm_forward" && what != "lstm_backward" && what != "lstm_train" && what != "all")
    return usage(argv[0]);
  int i = 2;
  std::vector<Shape> shapes;
  if (what == "all") {
    shapes.assign(std::begin(kShapes), std::end(kShapes));
  } else {
    if (argc < 6) return usage(argv[0]);
    Shape s{};
    Index* dims[] = {&s.B, &s.T, &s.D, &s.H};
    for (Index* d : dims) {
      *d = std::atol(argv[i++]);
      if (*d < 1) {
        std::fprintf(stderr, "B, T, D and H must be positive integers; got %s\n", argv[i - 1]);
        return 2;
      }
    }
    shapes.push_back(s);
  }
  Options o;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) o.threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--double") o.use_double = true;
    else if (a == "--seconds" && i + 1 < argc) o.seconds = std::atof(argv[++i]);
    else return usage(argv[0]);
  }
  set_num_threads(o.threads);
  std::printf("bench_kernels: %s, %d threads, built for %s\n", o.use_double ? "float64" : "float32", o.threads,
              isa());
  double load[1] = {0};
  if (getloadavg(load, 1) == 1 && load[0] > 0.5)
    std::printf("WARNING: load average %.1f before the run: other processes are busy; timings are unreliable\n",
                load[0]);
  if (o.use_double) run<double>(what, shapes, o);
  else run<float>(what, shapes, o);
  return 0;
}
