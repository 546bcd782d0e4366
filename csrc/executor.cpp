#include "executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

namespace onebit {

namespace {

constexpr std::size_t kAlign = 64;

std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

}  // namespace

void Plan::Free::operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t(kAlign)); }

const Plan::Value& Plan::checked_value(int id) const {
  if (id < 0 || id >= num_values()) {
    throw std::invalid_argument("Plan: " + std::to_string(id) + " is an unknown value (the plan has " +
                                std::to_string(num_values()) + ")");
  }
  return values_[static_cast<std::size_t>(id)];
}

int Plan::value(std::int64_t per_sample, int elem_bytes) {
  if (per_sample < 1 || (elem_bytes != 4 && elem_bytes != 8)) {
    throw std::invalid_argument("Plan.value: per_sample must be >= 1 and elem_bytes 4 or 8, got " +
                                std::to_string(per_sample) + " and " + std::to_string(elem_bytes));
  }
  if (io_set_) throw std::invalid_argument("Plan.value: the plan's inputs and outputs are already set");
  values_.push_back({per_sample, elem_bytes});
  written_.push_back(0);
  return static_cast<int>(values_.size()) - 1;
}

void Plan::step(std::string name, std::vector<int> reads, std::vector<int> writes, StepFn fn) {
  if (io_set_) throw std::invalid_argument("Plan: step " + name + " comes after set_io");
  auto valid = [&](int id) { return id >= 0 && id < num_values(); };
  for (int id : reads) {
    if (!valid(id)) throw std::invalid_argument("Plan: step " + name + " reads the unknown value " + std::to_string(id));
  }
  for (int id : writes) {
    if (!valid(id)) throw std::invalid_argument("Plan: step " + name + " writes the unknown value " + std::to_string(id));
    if (written_[static_cast<std::size_t>(id)]) {
      throw std::invalid_argument("Plan: step " + name + " writes value " + std::to_string(id) +
                                  ", which is already written");
    }
    if (std::find(reads.begin(), reads.end(), id) != reads.end()) {
      throw std::invalid_argument("Plan: step " + name + " reads and writes value " + std::to_string(id));
    }
  }
  for (int id : writes) written_[static_cast<std::size_t>(id)] = 1;
  steps_.push_back({std::move(name), std::move(reads), std::move(writes), std::move(fn)});
}

void Plan::set_io(std::vector<int> inputs, std::vector<int> outputs) {
  if (io_set_) throw std::invalid_argument("Plan.set_io: already set");
  std::vector<char> is_input(values_.size(), 0), produced(values_.size(), 0);
  for (int id : inputs) {
    if (id < 0 || id >= num_values()) throw std::invalid_argument("Plan.set_io: unknown input " + std::to_string(id));
    if (written_[static_cast<std::size_t>(id)]) {
      throw std::invalid_argument("Plan.set_io: input " + std::to_string(id) + " is written by a step");
    }
    is_input[static_cast<std::size_t>(id)] = 1;
  }
  // Every step reads only inputs and values written before it.
  for (const Step& s : steps_) {
    for (int id : s.reads) {
      if (!is_input[static_cast<std::size_t>(id)] && !produced[static_cast<std::size_t>(id)]) {
        throw std::invalid_argument("Plan: step " + s.name + " reads value " + std::to_string(id) +
                                    " before any step writes it (and it is not an input)");
      }
    }
    for (int id : s.writes) produced[static_cast<std::size_t>(id)] = 1;
  }
  for (int id : outputs) {
    if (id < 0 || id >= num_values() || !produced[static_cast<std::size_t>(id)]) {
      throw std::invalid_argument("Plan.set_io: output " + std::to_string(id) + " is not written by any step");
    }
    if (std::count(outputs.begin(), outputs.end(), id) != 1) {
      throw std::invalid_argument("Plan.set_io: output " + std::to_string(id) + " is listed twice");
    }
  }
  inputs_ = std::move(inputs);
  outputs_ = std::move(outputs);
  io_set_ = true;
}

std::vector<std::size_t> Plan::layout(std::int64_t n, std::size_t* total) const {
  const std::size_t count = values_.size();
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> offset(count, kNone);
  std::vector<char> external(count, 0);
  for (int id : inputs_) external[static_cast<std::size_t>(id)] = 1;
  for (int id : outputs_) external[static_cast<std::size_t>(id)] = 1;
  // Lifetime of each internal value in steps: [first write, last read] (a value nobody reads
  // lives through its own step only). Closed intervals: a step's output never shares bytes
  // with its inputs, whose lifetimes reach that step.
  std::vector<std::size_t> first(count, kNone), last(count, 0);
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    for (int id : steps_[s].writes) {
      first[static_cast<std::size_t>(id)] = s;
      last[static_cast<std::size_t>(id)] = s;
    }
    for (int id : steps_[s].reads) last[static_cast<std::size_t>(id)] = s;
  }
  struct Block {
    std::size_t offset, bytes, first, last;
  };
  std::vector<Block> placed;
  std::size_t end = 0;
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    for (int id : steps_[s].writes) {
      const auto v = static_cast<std::size_t>(id);
      if (external[v]) continue;
      const std::size_t bytes =
          aligned(static_cast<std::size_t>(n) * static_cast<std::size_t>(values_[v].per_sample) *
                  static_cast<std::size_t>(values_[v].elem_bytes));
      // First fit among the blocks whose lifetimes overlap this one, by offset.
      std::vector<std::pair<std::size_t, std::size_t>> busy;
      for (const Block& b : placed) {
        if (b.first <= last[v] && first[v] <= b.last) busy.emplace_back(b.offset, b.offset + b.bytes);
      }
      std::sort(busy.begin(), busy.end());
      std::size_t at = 0;
      for (const auto& [lo, hi] : busy) {
        if (at + bytes <= lo) break;
        at = std::max(at, hi);
      }
      offset[v] = at;
      placed.push_back({at, bytes, first[v], last[v]});
      end = std::max(end, at + bytes);
    }
  }
  *total = end;
  return offset;
}

std::size_t Plan::arena_bytes(std::int64_t n) const {
  std::size_t total = 0;
  layout(n, &total);
  return total;
}

void Plan::run(const std::vector<const void*>& in, const std::vector<void*>& out, std::int64_t n, int num_threads) {
  if (!io_set_) throw std::invalid_argument("Plan.run: set_io first");
  if (in.size() != inputs_.size() || out.size() != outputs_.size()) {
    throw std::invalid_argument("Plan.run: needs " + std::to_string(inputs_.size()) + " inputs and " +
                                std::to_string(outputs_.size()) + " outputs");
  }
  if (n < 1) throw std::invalid_argument("Plan.run: n must be >= 1");
  std::lock_guard<std::mutex> lock(mutex_);
  if (n != planned_n_) {
    std::size_t total = 0;
    offsets_ = layout(n, &total);
    if (total > arena_capacity_) {
      arena_.reset(static_cast<std::byte*>(::operator new[](total, std::align_val_t(kAlign))));
      arena_capacity_ = total;
    }
    planned_n_ = n;
  }
  slots_.assign(values_.size(), nullptr);
  for (std::size_t v = 0; v < values_.size(); ++v) {
    if (offsets_[v] != static_cast<std::size_t>(-1)) slots_[v] = arena_.get() + offsets_[v];
  }
  for (std::size_t i = 0; i < in.size(); ++i) slots_[static_cast<std::size_t>(inputs_[i])] = const_cast<void*>(in[i]);
  for (std::size_t i = 0; i < out.size(); ++i) slots_[static_cast<std::size_t>(outputs_[i])] = out[i];
  if (!profile_) {
    for (const Step& s : steps_) s.fn(slots_.data(), n, num_threads);
    return;
  }
  step_seconds_.resize(steps_.size(), 0.0);
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    steps_[i].fn(slots_.data(), n, num_threads);
    step_seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

void Plan::set_profile(bool on) {
  std::lock_guard<std::mutex> lock(mutex_);
  profile_ = on;
}

std::vector<double> Plan::step_seconds() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<double> out = step_seconds_;
  out.resize(steps_.size(), 0.0);
  return out;
}

void Plan::reset_profile() {
  std::lock_guard<std::mutex> lock(mutex_);
  step_seconds_.assign(steps_.size(), 0.0);
}

}  // namespace onebit
