#include "embedding.h"

#include <cstring>

namespace onebit {

std::int64_t first_bad_id(const float* ids, std::int64_t count, std::int64_t vocab) {
  for (std::int64_t i = 0; i < count; ++i) {
    const float v = ids[i];
    // NaN fails both comparisons; the float range test comes before the integer cast.
    if (!(v >= 0.0f && v < static_cast<float>(vocab)) || static_cast<float>(static_cast<std::int64_t>(v)) != v) {
      return i;
    }
  }
  return -1;
}

void embedding_gather(const float* ids, std::int64_t count, const void* table, std::int64_t row_bytes, void* out) {
  const auto* src = static_cast<const unsigned char*>(table);
  auto* dst = static_cast<unsigned char*>(out);
  for (std::int64_t i = 0; i < count; ++i) {
    std::memcpy(dst + i * row_bytes, src + static_cast<std::int64_t>(ids[i]) * row_bytes,
                static_cast<std::size_t>(row_bytes));
  }
}

}  // namespace onebit
