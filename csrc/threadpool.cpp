#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

namespace onebit {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long an idle worker spins before sleeping, and how long the caller spins waiting
// for the workers before sleeping.
constexpr auto kSpin = std::chrono::microseconds(200);

class ThreadPool {
 public:
  void run(int num_threads, std::int64_t num_tasks, TaskFn fn, void* ctx) {
    std::unique_lock<std::mutex> caller(run_mu_, std::try_to_lock);
    if (!caller.owns_lock()) {  // another thread is using the pool: do it here
      for (std::int64_t t = 0; t < num_tasks; ++t) fn(ctx, t, 0);
      return;
    }
    const int helpers = num_threads - 1;
    ensure_workers(helpers);
    fn_ = fn;
    ctx_ = ctx;
    num_tasks_ = num_tasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(helpers, std::memory_order_relaxed);
    {
      // The helper count travels in the low bits of the generation word, so a worker
      // that wakes late reads the job's id and its participant count in one load.
      std::lock_guard<std::mutex> lock(mu_);
      const std::uint64_t seq = (generation_.load(std::memory_order_relaxed) >> 16) + 1;
      generation_.store((seq << 16) | static_cast<std::uint64_t>(helpers), std::memory_order_release);
    }
    cv_work_.notify_all();

    drain(0);

    // Wait for the helpers: spin a little, then sleep.
    const auto until = std::chrono::steady_clock::now() + kSpin;
    unsigned spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
      cpu_relax();
      if ((++spins & 63u) == 0 && std::chrono::steady_clock::now() > until) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
        break;
      }
    }
  }

 private:
  void drain(int thread) {
    for (;;) {
      const std::int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= num_tasks_) return;
      fn_(ctx_, t, thread);
    }
  }

  void ensure_workers(int n) {
    // A new worker starts from the generation before the job that needs it is published
    // (run() bumps it after this returns): reading it in the thread instead could see the
    // bumped value if the thread starts late, miss the job, and leave run() waiting forever.
    const std::uint64_t seen = generation_.load(std::memory_order_acquire);
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index, seen] { worker_main(index, seen); });
      workers_.back().detach();  // the pool lives until the process exits
    }
  }

  void worker_main(int index, std::uint64_t seen) {
    for (;;) {
      // Wait for a new job: spin, then sleep.
      const auto until = std::chrono::steady_clock::now() + kSpin;
      unsigned spins = 0;
      std::uint64_t gen;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        cpu_relax();
        if ((++spins & 63u) == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(mu_);
          cv_work_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
          gen = generation_.load(std::memory_order_acquire);
          break;
        }
      }
      seen = gen;
      // Job fields were written before the generation was bumped (release/acquire), and
      // cannot change until every helper of this job has decremented pending_.
      if (index >= static_cast<int>(gen & 0xffffu)) continue;
      drain(index + 1);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        cv_done_.notify_one();
      }
    }
  }

  std::mutex run_mu_;  // one caller at a time
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::int64_t> next_{0};
  std::atomic<int> pending_{0};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::int64_t num_tasks_ = 0;
};

ThreadPool& pool() {
  // Leaked on purpose: detached workers may still be parked on its condition variables
  // at exit. After fork() the workers do not exist in the child: start a new pool.
#if defined(__linux__)
  static std::atomic<ThreadPool*> instance{nullptr};
  static std::atomic<pid_t> owner{0};
  static std::mutex mu;
  const pid_t pid = getpid();
  ThreadPool* p = instance.load(std::memory_order_acquire);
  if (p == nullptr || owner.load(std::memory_order_acquire) != pid) {
    std::lock_guard<std::mutex> lock(mu);
    p = instance.load(std::memory_order_acquire);
    if (p == nullptr || owner.load(std::memory_order_acquire) != pid) {
      p = new ThreadPool();
      instance.store(p, std::memory_order_release);
      owner.store(pid, std::memory_order_release);
    }
  }
  return *p;
#else
  static ThreadPool* p = new ThreadPool();
  return *p;
#endif
}

int count_physical_cores() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    std::set<std::pair<std::string, std::string>> cores;
    int logical = 0;
    bool topology = true;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      ++logical;
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
      std::string p, c;
      if (!(pkg >> p) || !(core >> c)) {
        topology = false;
        continue;
      }
      cores.emplace(p, c);
    }
    if (topology && !cores.empty()) return static_cast<int>(cores.size());
    if (logical > 0) return logical;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

}  // namespace

void parallel_run(int num_threads, std::int64_t num_tasks, TaskFn fn, void* ctx) {
  if (num_tasks <= 0) return;
  num_threads = static_cast<int>(std::min<std::int64_t>(std::max(num_threads, 1), num_tasks));
  if (num_threads == 1) {
    for (std::int64_t t = 0; t < num_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  pool().run(std::min(num_threads, kMaxThreads), num_tasks, fn, ctx);
}

int default_num_threads() {
  static const int n = std::clamp(count_physical_cores(), 1, kMaxThreads);
  return n;
}

}  // namespace onebit
