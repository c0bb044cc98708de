// common.cpp — the kernels' thread team: the number of threads set, and the policy that sizes
// the team a kernel actually runs on.
//
// OpenMP threads meet at the end of every parallel region (and at every time step where a
// recurrence splits its units over threads). On cores shared with other busy processes, a team
// mate that the scheduler has taken off its core keeps the others waiting for its whole time
// slice, spinning: a step of a small model took tens of times its quiet time. The adaptive
// policy (the default) looks at two figures once per window of kWindowNs while kernels run:
//
//   contention  ρ = Δ(time the calling thread waited on a run queue) / Δwall
//                   (/proc/self/task/<tid>/schedstat, second field)
//   idle cores  ι = Σ over this process's CPUs of Δ(idle + iowait time) / Δwall   (/proc/stat)
//
// and sizes the team u ∈ [1, n] (n: the number set) by next_team_size():
//
//   ρ > kContended                 → u ← max(1, ⌊u/2⌋)            the cores are contended
//   else, u < n and ι ≥ kIdleCores  → u ← min(n, u + max(1, ⌊ι⌉))   cores fell idle again
//
// Results do not depend on u (every kernel splits its work into fixed tiles), so the policy
// changes speed only. Where /proc cannot be read, the team stays at n.
#include "common.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>

#ifdef __linux__
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "namespace.h"

LSTMFAST_NAMESPACE_BEGIN

namespace {

constexpr std::int64_t kWindowNs = 200'000'000;  // 0.2 s between two looks
constexpr double kContended = 0.1;
constexpr double kIdleCores = 0.5;
constexpr int kProbeWindows = 25;  // without idle figures: try a larger team every 5 s

std::atomic<int> g_set{1};                         // n
std::atomic<int> g_used{1};                        // u
std::atomic<bool> g_adaptive{true};
std::atomic<std::int64_t> g_next_look{0};          // coarse monotonic ns of the next look
std::mutex g_look;

struct Readings {  // the last look, guarded by g_look
  bool valid = false;
  long tid = -1;
  std::int64_t wall_ns = 0;
  std::int64_t wait_ns = 0;
  double idle_s = -1;  // < 0: not known
  int reduced_windows = 0;
  double contention = -1, idle_cores = -1;  // figures of the last window, for diagnostics
};
Readings g_last;

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

#ifdef __linux__
// Reads a small /proc file into buf (NUL-terminated); false when it cannot.
bool read_proc(const char* path, char* buf, std::size_t size) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t n = 0;
  while (n + 1 < size) {
    const ssize_t r = ::read(fd, buf + n, size - 1 - n);
    if (r <= 0) break;
    n += std::size_t(r);
  }
  ::close(fd);
  buf[n] = '\0';
  return n > 0;
}

// Nanoseconds the calling thread has waited on a run queue, or −1.
std::int64_t run_queue_wait_ns(long tid) {
  char path[64], buf[128];
  std::snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
  if (!read_proc(path, buf, sizeof buf)) return -1;
  unsigned long long on_cpu = 0, waited = 0;
  if (std::sscanf(buf, "%llu %llu", &on_cpu, &waited) != 2) return -1;
  return std::int64_t(waited);
}

// Seconds the CPUs this process may run on have spent idle (or waiting for I/O), or −1.
double idle_seconds() {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
  static thread_local std::vector<char> buf(1 << 16);
  for (;;) {  // /proc/stat grows with the CPUs of the machine
    if (!read_proc("/proc/stat", buf.data(), buf.size())) return -1;
    if (std::strlen(buf.data()) + 1 < buf.size() || buf.size() >= (1u << 24)) break;
    buf.resize(buf.size() * 2);
  }
  const long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) return -1;
  unsigned long long ticks = 0;
  bool any = false;
  for (const char* line = buf.data(); line && *line; line = std::strchr(line, '\n')) {
    if (*line == '\n') ++line;
    int cpu = -1;
    unsigned long long user, nice, system, idle, iowait;
    if (std::sscanf(line, "cpu%d %llu %llu %llu %llu %llu", &cpu, &user, &nice, &system, &idle, &iowait) == 6 &&
        cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) {
      ticks += idle + iowait;
      any = true;
    }
  }
  return any ? double(ticks) / double(hz) : -1;
}
#endif

// One look: the figures of the window since the last look, and the team for the next window.
void look() {
#ifdef __linux__
  const long tid = static_cast<long>(::syscall(SYS_gettid));
  const std::int64_t wall = now_ns(CLOCK_MONOTONIC);
  const std::int64_t wait = run_queue_wait_ns(tid);
  if (wait < 0) {  // no scheduler statistics here: keep the set team, and stop looking
    g_used.store(g_set.load());
    g_next_look.store(std::numeric_limits<std::int64_t>::max());
    return;
  }
  const int used = g_used.load(), set = g_set.load();
  const double idle = used < set ? idle_seconds() : -1;
  Readings& r = g_last;
  if (r.valid && r.tid == tid && wall > r.wall_ns) {
    const double dt = double(wall - r.wall_ns) * 1e-9;
    r.contention = double(wait - r.wait_ns) * 1e-9 / dt;
    r.idle_cores = idle >= 0 && r.idle_s >= 0 ? (idle - r.idle_s) / dt : -1;
    double idle_cores = r.idle_cores;
    if (idle_cores < 0 && used < set && ++r.reduced_windows >= kProbeWindows) idle_cores = kIdleCores;
    const int next = next_team_size(used, set, r.contention, idle_cores);
    if (next != used) r.reduced_windows = 0;
    g_used.store(next);
  }
  r.valid = true;
  r.tid = tid;
  r.wall_ns = wall;
  r.wait_ns = wait;
  r.idle_s = g_used.load() < set ? (idle >= 0 ? idle : idle_seconds()) : -1;
#endif
}

}  // namespace

int next_team_size(int used, int set, double contention, double idle_cores) {
  if (contention > kContended) return std::max(1, used / 2);
  if (used < set && idle_cores >= kIdleCores)
    return std::min(set, used + std::max(1, static_cast<int>(std::lround(idle_cores))));
  return std::min(used, set);
}

int threads_in_use() { return g_used.load(std::memory_order_relaxed); }

int max_threads() { return g_set.load(std::memory_order_relaxed); }

int num_threads() {
  if (g_adaptive.load(std::memory_order_relaxed) && g_set.load(std::memory_order_relaxed) > 1 &&
      now_ns(CLOCK_MONOTONIC_COARSE) >= g_next_look.load(std::memory_order_relaxed)
#ifdef _OPENMP
      && !omp_in_parallel()
#endif
  ) {
    std::unique_lock<std::mutex> lock(g_look, std::try_to_lock);
    if (lock && now_ns(CLOCK_MONOTONIC_COARSE) >= g_next_look.load()) {
      g_next_look.store(now_ns(CLOCK_MONOTONIC_COARSE) + kWindowNs);
      look();
    }
  }
  return g_used.load(std::memory_order_relaxed);
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_look);
  n = n < 1 ? 1 : n;
  g_set.store(n);
  g_used.store(n);
  g_last = Readings{};
  g_next_look.store(0);
}

void set_adaptive_threads(bool on) {
  std::lock_guard<std::mutex> lock(g_look);
  g_adaptive.store(on);
  g_used.store(g_set.load());
  g_last = Readings{};
  g_next_look.store(0);
}

bool adaptive_threads() { return g_adaptive.load(); }

std::pair<double, double> thread_policy_readings() {
  std::lock_guard<std::mutex> lock(g_look);
  return {g_last.contention, g_last.idle_cores};
}

LSTMFAST_NAMESPACE_END  // lstmfast
