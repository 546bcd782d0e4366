// The kernels' thread pool. Design (see threadpool.h for the contract):
//
// * A job is published as a 64-bit word job_ = (seq << 32) | wake flag | helpers, after
//   its fields. Workers 0..helpers-1 (threads 1..helpers) take part in it; the others
//   ignore it.
// * The tasks are cut into one run per participant (caller = 0, worker i = i + 1), within
//   one task of each other, each with its claim word claims_[p] = (seq << 32) | next task,
//   claimed with a compare-exchange that only succeeds while the word still carries the
//   claimer's job seq and tasks of the run are left. A participant takes its own run
//   first, in order, then what is left of the others': when all are there, thread p gets
//   the same part of every job (the same image rows layer after layer, the same weight
//   tiles call after call), so the data it reads is mostly what it wrote or read last
//   time, in its own cache; a slow or absent thread's run is taken over by the others.
//   A worker that wakes late (the job is finished, or a later one is running) fails the
//   claims and goes back to waiting: it never runs a task of the wrong job, and nobody
//   waits for it.
// * The caller takes tasks too, and returns once every task is done (done_ == num_tasks):
//   it waits only for tasks a worker actually claimed and is running, never for workers
//   to check in. If no worker shows up in time, the caller simply does all the tasks.
// * Idle workers spin briefly (pause instruction, then sched_yield so that whatever else
//   wants the core gets it), then sleep on their own condition variable. Sleeping workers
//   are woken (a futex call each, a few microseconds of the caller's time; and a worker
//   sleeping on an idle core took ~50-70 us to start in a VM) only for jobs estimated
//   worth it, or when jobs come back to back (then the wake-up serves the jobs that
//   follow, which find the worker still spinning); other jobs are shared with the workers
//   that are awake, if any.
#include "threadpool.h"

#include <algorithm>
#include <array>
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

inline void yield_cpu() {
#if defined(__linux__)
  sched_yield();
#else
  std::this_thread::yield();
#endif
}

using Clock = std::chrono::steady_clock;

// Waiting, a thread first spins on the pause instruction for kSpin, then calls
// sched_yield() between checks until k*Yield (cheap when the core is otherwise idle; when
// it is not, whoever else wants the core, the caller included, gets it: a pause loop
// would hold it for a whole time slice), then sleeps. An idle worker counts from the end
// of its last job, so back-to-back kernel calls (e.g. the layers of a network) find it
// awake; the caller, out of tasks, counts from then while it waits for the tasks workers
// are still running (a worker that claimed a task may have been preempted).
constexpr auto kSpin = std::chrono::microseconds(5);
constexpr auto kWorkerYield = std::chrono::microseconds(200);
constexpr auto kCallerYield = std::chrono::microseconds(50);
// Tasks per job: a claim word keeps the task index in its low 32 bits.
constexpr std::int64_t kMaxTasksPerJob = std::int64_t{1} << 31;
constexpr std::uint64_t kClosed = 0xffffffffu;  // claim word's index of a run with no tasks

// Jobs estimated to take less than this (single-thread microseconds) do not wake sleeping
// workers: the caller would lose more in the futex call than a worker arriving ~50 us
// later could save.
constexpr double kWakeMinMicros = 100.0;

constexpr std::uint64_t kLow = 0xffffffffu;
constexpr std::uint64_t kWakeFlag = std::uint64_t{1} << 16;
constexpr std::uint64_t kHelpersMask = kWakeFlag - 1;

// First task of participant p's run when num_tasks are cut into `parts` runs.
inline std::int64_t run_start(std::int64_t p, std::int64_t num_tasks, std::int64_t parts) {
  return p * (num_tasks / parts) + std::min(p, num_tasks % parts);
}

struct alignas(64) ClaimWord {  // one per participant, on its own cache line
  std::atomic<std::uint64_t> word{0};
};

struct alignas(64) Slot {  // one per worker, on its own cache line
  std::atomic<bool> sleeping{false};
  std::mutex mu;
  std::condition_variable cv;
};

class ThreadPool {
 public:
  void run(int num_threads, std::int64_t num_tasks, std::int64_t offset, TaskFn fn, void* ctx, bool wake_sleepers) {
    std::unique_lock<std::mutex> caller(run_mu_, std::try_to_lock);
    if (!caller.owns_lock()) {  // another thread is using the pool: do it here
      for (std::int64_t t = 0; t < num_tasks; ++t) fn(ctx, offset + t, 0);
      return;
    }
    const int helpers = num_threads - 1;
    ensure_workers(helpers);
    // Jobs back to back (this one starts while a worker that took part in the last one
    // would still be spinning): wake the sleepers whatever the size, once for the stream.
    const auto now = Clock::now();
    wake_sleepers = wake_sleepers || now - last_end_ < kWorkerYield;
    const std::uint64_t seq = (job_.load(std::memory_order_relaxed) >> 32) + 1;
    // Order matters: first close the claims of earlier jobs under the new seq (a late
    // worker's compare-exchange now fails; every word an earlier job used is rewritten),
    // then the fields (release: a worker that reads one of them also sees the new claim
    // words), then the job word that announces it all.
    const int parts = helpers + 1;
    claimed_ranges_ = std::max(claimed_ranges_, parts);
    for (int p = 0; p < claimed_ranges_; ++p) {
      const std::uint64_t next = p < parts ? static_cast<std::uint64_t>(run_start(p, num_tasks, parts)) : kClosed;
      claims_[static_cast<std::size_t>(p)].word.store((seq << 32) | next, std::memory_order_seq_cst);
    }
    done_.store(0, std::memory_order_relaxed);
    fn_.store(fn, std::memory_order_release);
    ctx_.store(ctx, std::memory_order_release);
    offset_.store(offset, std::memory_order_release);
    num_tasks_.store(num_tasks, std::memory_order_release);
    job_.store((seq << 32) | (wake_sleepers ? kWakeFlag : 0) | static_cast<std::uint64_t>(helpers),
               std::memory_order_seq_cst);
    // Wake the sleeping helpers as a tree: the caller wakes workers 0 and 1, worker i wakes
    // 2i + 2 and 2i + 3, so the caller makes at most two futex calls however many there are.
    if (wake_sleepers) {
      wake(0, helpers);
      wake(1, helpers);
    }

    work(seq, num_tasks, parts, offset, fn, ctx, 0);
    wait_done(num_tasks);
    last_end_ = Clock::now();
  }

 private:
  // Waits for the tasks workers claimed and are still running (none, usually).
  void wait_done(std::int64_t num_tasks) {
    if (done_.load(std::memory_order_acquire) == num_tasks) return;
    const auto start = Clock::now();
    unsigned spins = 0;
    while (done_.load(std::memory_order_acquire) != num_tasks) {
      if ((++spins & 15u) != 0) {
        cpu_relax();
        continue;
      }
      const auto waited = Clock::now() - start;
      if (waited < kSpin) {
        cpu_relax();
      } else if (waited < kCallerYield) {
        yield_cpu();
      } else {
        std::unique_lock<std::mutex> lock(done_mu_);
        caller_sleeping_.store(true, std::memory_order_seq_cst);
        done_cv_.wait(lock, [&] { return done_.load(std::memory_order_seq_cst) == num_tasks; });
        caller_sleeping_.store(false, std::memory_order_relaxed);
        break;
      }
    }
  }

  // Claims and runs tasks of job seq (cut into `parts` runs) until none is left (or the job
  // is not seq any more): its own run first, then the others' in turn.
  void work(std::uint64_t seq, std::int64_t num_tasks, int parts, std::int64_t offset, TaskFn fn, void* ctx,
            int thread) {
    for (int i = 0; i < parts; ++i) {
      const int p = (thread + i) % parts;
      const auto end = static_cast<std::uint64_t>(run_start(p + 1, num_tasks, parts));
      std::atomic<std::uint64_t>& claim = claims_[static_cast<std::size_t>(p)].word;
      std::uint64_t c = claim.load(std::memory_order_acquire);
      for (;;) {
        if ((c >> 32) != seq) return;  // a later job: nothing of seq is left anywhere
        if ((c & kLow) >= end) break;
        if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        fn(ctx, offset + static_cast<std::int64_t>(c & kLow), thread);
        if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == num_tasks && thread != 0 &&
            caller_sleeping_.load(std::memory_order_seq_cst)) {
          { std::lock_guard<std::mutex> lock(done_mu_); }
          done_cv_.notify_one();
        }
        c = claim.load(std::memory_order_acquire);
      }
    }
  }

  void wake(int index, int helpers) {
    if (index >= helpers) return;
    Slot& s = *slot_ptrs_[static_cast<std::size_t>(index)];
    if (s.sleeping.load(std::memory_order_seq_cst)) {
      { std::lock_guard<std::mutex> lock(s.mu); }
      s.cv.notify_one();
    }
  }

  void ensure_workers(int n) {
    // A new worker starts from the job word before the job that needs it is published
    // (run() bumps it after this returns): reading it in the thread instead could see the
    // bumped value if the thread starts late and miss the job (harmless now: the caller
    // would do the tasks, but the worker would sit the job out).
    const std::uint64_t seen = job_.load(std::memory_order_acquire);
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size());
      Slot* slot = new Slot();  // never freed, like the pool
      slot_ptrs_[static_cast<std::size_t>(index)] = slot;
      workers_.emplace_back([this, index, slot, seen] { worker_main(index, slot, seen); });
      workers_.back().detach();  // the pool lives until the process exits
    }
  }

  // Waits until the job word differs from seen: spin, yield, then sleep, the phases
  // counted from start (the end of the worker's last job).
  std::uint64_t wait_for_job(Slot& slot, std::uint64_t seen, Clock::time_point start) {
    std::uint64_t job;
    unsigned spins = 0;
    while ((job = job_.load(std::memory_order_acquire)) == seen) {
      if ((++spins & 15u) != 0) {
        cpu_relax();
        continue;
      }
      const auto idle = Clock::now() - start;
      if (idle < kSpin) {
        cpu_relax();
      } else if (idle < kWorkerYield) {
        yield_cpu();
      } else {
        std::unique_lock<std::mutex> lock(slot.mu);
        slot.sleeping.store(true, std::memory_order_seq_cst);
        slot.cv.wait(lock, [&] { return job_.load(std::memory_order_seq_cst) != seen; });
        slot.sleeping.store(false, std::memory_order_relaxed);
        return job_.load(std::memory_order_acquire);
      }
    }
    return job;
  }

  void worker_main(int index, Slot* slot, std::uint64_t seen) {
    auto idle_since = Clock::now();
    for (;;) {
      const std::uint64_t job = wait_for_job(*slot, seen, idle_since);
      seen = job;
      const int helpers = static_cast<int>(job & kHelpersMask);
      if (index >= helpers) continue;  // not a helper of this job
      if (job & kWakeFlag) {
        wake(2 * index + 2, helpers);
        wake(2 * index + 3, helpers);
      }
      // The fields may already belong to a later job; then the claim word carries a later
      // seq too (it is written before them) and work() claims nothing.
      const TaskFn fn = fn_.load(std::memory_order_acquire);
      void* const ctx = ctx_.load(std::memory_order_acquire);
      const std::int64_t offset = offset_.load(std::memory_order_acquire);
      const std::int64_t num_tasks = num_tasks_.load(std::memory_order_acquire);
      work(job >> 32, num_tasks, helpers + 1, offset, fn, ctx, index + 1);
      idle_since = Clock::now();
    }
  }

  std::mutex run_mu_;  // one caller at a time
  Clock::time_point last_end_{};  // when the last job ended (under run_mu_)
  std::vector<std::thread> workers_;
  // Workers' slots, written by ensure_workers() before the worker (and any job that may
  // wake it) exists; read by run() and by workers waking their children in the tree.
  std::array<Slot*, kMaxThreads> slot_ptrs_{};
  alignas(64) std::atomic<std::uint64_t> job_{0};
  std::array<ClaimWord, kMaxThreads> claims_{};
  int claimed_ranges_ = 0;  // claim words any job has used (under run_mu_)
  alignas(64) std::atomic<std::int64_t> done_{0};
  alignas(64) std::atomic<TaskFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<std::int64_t> offset_{0};
  std::atomic<std::int64_t> num_tasks_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
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

void parallel_run(int num_threads, std::int64_t num_tasks, TaskFn fn, void* ctx, double work_us) {
  if (num_tasks <= 0) return;
  num_threads = static_cast<int>(std::min<std::int64_t>(std::max(num_threads, 1), num_tasks));
  if (num_threads == 1) {
    for (std::int64_t t = 0; t < num_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  num_threads = std::min(num_threads, kMaxThreads);
  for (std::int64_t offset = 0; offset < num_tasks; offset += kMaxTasksPerJob) {
    pool().run(num_threads, std::min(kMaxTasksPerJob, num_tasks - offset), offset, fn, ctx,
               !(work_us >= 0.0 && work_us < kWakeMinMicros));
  }
}

int default_num_threads() {
  static const int n = std::clamp(count_physical_cores(), 1, kMaxThreads);
  return n;
}

}  // namespace onebit
