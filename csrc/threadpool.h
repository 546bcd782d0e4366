// A small persistent thread pool for the kernels (std::thread, no OpenMP).
//
// run(num_threads, num_tasks, fn, ctx) calls fn(ctx, task, thread) once for every task in
// [0, num_tasks), on the calling thread (thread 0) plus up to num_threads - 1 pool workers
// (threads 1..), handing tasks out through an atomic counter, and returns when all are
// done. With num_threads == 1 (or one task) the tasks run in a plain loop on the calling
// thread: no hand-off, no synchronisation. Workers spin briefly after a job (so back-to-
// back calls do not pay a futex wake-up), then sleep on a condition variable.
//
// Concurrent callers (the bindings release the GIL) are serialised on the pool; a caller
// that finds it busy runs its tasks on its own thread instead of waiting. After fork() the
// child gets a fresh pool. fn must not throw.
#pragma once

#include <cstdint>

namespace onebit {

using TaskFn = void (*)(void* ctx, std::int64_t task, int thread);

void parallel_run(int num_threads, std::int64_t num_tasks, TaskFn fn, void* ctx);

// Default thread count: the physical cores this process may run on (sched affinity mask,
// hyper-thread siblings counted once), falling back to std::thread::hardware_concurrency().
int default_num_threads();

// Upper bound accepted for num_threads.
constexpr int kMaxThreads = 256;

}  // namespace onebit
