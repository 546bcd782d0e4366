// The graph executor: a model's nodes planned once at load into a straight-line program of
// kernel calls, run for a batch with no return to Python between nodes.
//
// A Plan holds values (per-sample buffers of float32 or uint64 words) and steps (a kernel
// call bound at load to its weights and parameters, reading and writing values by id).
// run() takes the caller's input buffers and output buffers; every other value lives in one
// 64-byte aligned arena whose layout is planned from the values' lifetimes (a value's bytes
// are reused once its last reader has run; a step never writes over its own inputs), made
// again only when the batch size changes. Each step calls exactly the kernel that
// onebit.runtime's Python reference calls for that node, with the same arguments, so the
// results are the same bits (tested on every zoo model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace onebit {

class Plan {
 public:
  // slots[v]: value v's buffer for this batch; n: samples; num_threads: the model's threads.
  using StepFn = std::function<void(void* const* slots, std::int64_t n, int num_threads)>;

  // A value of `per_sample` elements of `elem_bytes` bytes each per sample; returns its id.
  int value(std::int64_t per_sample, int elem_bytes);
  // Throw std::invalid_argument for an id that is not a value of the plan.
  std::int64_t per_sample(int id) const { return checked_value(id).per_sample; }
  int elem_bytes(int id) const { return checked_value(id).elem_bytes; }
  int num_values() const { return static_cast<int>(values_.size()); }
  std::size_t num_steps() const { return steps_.size(); }

  // Appends a step; every id it reads must be an input or written by an earlier step.
  // Throws std::invalid_argument naming `name` otherwise.
  void step(std::string name, std::vector<int> reads, std::vector<int> writes, StepFn fn);

  // The values the caller provides (inputs) and receives (outputs); set once, before run.
  void set_io(std::vector<int> inputs, std::vector<int> outputs);
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }

  // Runs the steps in order; in[i] is inputs()[i]'s buffer, out[i] outputs()[i]'s (each
  // n * per_sample elements, distinct from every input). Calls are serialized (one arena).
  void run(const std::vector<const void*>& in, const std::vector<void*>& out, std::int64_t n, int num_threads);

  // Bytes of the arena for a batch of n (the lifetimes' layout; 0 if nothing is internal).
  std::size_t arena_bytes(std::int64_t n) const;

  // With profiling on, run() adds each step's wall time to step_seconds() (one entry per
  // step, in order); reset_profile() zeroes them.
  void set_profile(bool on);
  std::vector<double> step_seconds();
  void reset_profile();

 private:
  struct Value {
    std::int64_t per_sample;
    int elem_bytes;
  };
  struct Step {
    std::string name;
    std::vector<int> reads, writes;
    StepFn fn;
  };
  struct Free {
    void operator()(std::byte* p) const noexcept;
  };
  const Value& checked_value(int id) const;
  // Byte offset of each internal value in the arena for n samples, and the arena's size.
  std::vector<std::size_t> layout(std::int64_t n, std::size_t* total) const;

  std::vector<Value> values_;
  std::vector<Step> steps_;
  std::vector<int> inputs_, outputs_;
  std::vector<char> written_;  // per value: an input or written by a step so far
  bool io_set_ = false;

  std::mutex mutex_;
  std::int64_t planned_n_ = -1;
  std::vector<std::size_t> offsets_;
  std::unique_ptr<std::byte[], Free> arena_;
  std::size_t arena_capacity_ = 0;
  std::vector<void*> slots_;
  bool profile_ = false;
  std::vector<double> step_seconds_;
};

}  // namespace onebit
