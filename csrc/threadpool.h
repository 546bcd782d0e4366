// A small persistent thread pool for the kernels (std::thread, no OpenMP).
//
// parallel_run(num_threads, num_tasks, fn, ctx) calls fn(ctx, task, thread) exactly once
// for every task in [0, num_tasks), on the calling thread (thread 0) plus up to
// num_threads - 1 pool workers (threads 1..), and returns when all are done. The tasks are
// cut into one run of consecutive tasks per thread; each thread claims its own run first
// (so with the same task plan, thread t gets the same part of every job: its data stays
// in its cache), then what is left of the others'. With num_threads == 1 (or one task)
// the tasks run in a plain loop on the calling thread: no hand-off, no synchronisation.
//
// The caller never waits for a worker to show up: it takes tasks itself and waits only
// for tasks that a worker has already claimed and is running. A worker that wakes late
// (its core was busy) finds the job finished, claims nothing, and goes back to waiting,
// so num_threads is a maximum, and a busy core costs no waiting. Workers spin briefly
// after a job (pause, then sched_yield so they never hold a core someone else wants), so
// that back-to-back calls find them awake, then sleep.
//
// work_us: the caller's estimate of the job's single-thread time in microseconds, or < 0
// if unknown. Waking a sleeping worker costs the caller a futex call (a few microseconds,
// more in a VM) and the worker may start tens of microseconds later, so a job estimated
// under ~100 us goes only to workers that are awake (spinning after a recent job) and
// runs on the calling thread alone otherwise, unless jobs come back to back (within a
// worker's spin time of the last one), when the wake-up serves the jobs that follow.
// Other jobs wake the workers they need.
//
// Concurrent callers (the bindings release the GIL) are serialised on the pool; a caller
// that finds it busy runs its tasks on its own thread instead of waiting. After fork() the
// child gets a fresh pool. fn must not throw.
#pragma once

#include <cstdint>

namespace onebit {

using TaskFn = void (*)(void* ctx, std::int64_t task, int thread);

void parallel_run(int num_threads, std::int64_t num_tasks, TaskFn fn, void* ctx, double work_us = -1.0);

// Default thread count: the physical cores this process may run on (sched affinity mask,
// hyper-thread siblings counted once), falling back to std::thread::hardware_concurrency().
int default_num_threads();

// Upper bound accepted for num_threads.
constexpr int kMaxThreads = 256;

}  // namespace onebit
