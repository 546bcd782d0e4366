// Token ids -> table rows, the text CNN's first node (onebit/runtime/embedding.py).
#pragma once

#include <cstdint>

namespace onebit {

// The index of the first id in ids[0, count) that is not an integer in [0, vocab), or -1.
std::int64_t first_bad_id(const float* ids, std::int64_t count, std::int64_t vocab);

// out[i] = the table row of ids[i] (row_bytes each) for i < count; ids checked by first_bad_id.
void embedding_gather(const float* ids, std::int64_t count, const void* table, std::int64_t row_bytes, void* out);

}  // namespace onebit
