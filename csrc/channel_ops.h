// Per-channel elementwise steps on the float values between binary layers (NHWC rows of C
// channels): a BatchNorm with no layer before it, (R)PReLU, a residual add, and the shifted
// sign that packs a value for the next binary layer. Each step rounds to float32 as
// numpy's separate operations do (the library is built with -ffp-contract=off), so every
// ISA and thread count gives the same bits. Threaded over rows; memory bound.
#pragma once

#include <cstdint>

#include "dispatch.h"

namespace onebit {

// out[r, j] = x[r, j] * scale[j] + bias[j]
void channel_affine(const float* x, std::int64_t rows, std::int64_t c, const float* scale, const float* bias,
                    float* out, int num_threads, Isa isa);

// z = x[r, j] - shift_in[j]; out[r, j] = (max(z, 0) + min(z, 0) * slope[j]) + shift_out[j]
// (RPReLU; PReLU with zero shifts). One of the two terms is +-0, so the sum is exact.
void channel_prelu(const float* x, std::int64_t rows, std::int64_t c, const float* shift_in, const float* slope,
                   const float* shift_out, float* out, int num_threads, Isa isa);

// out[i] = a[i] + b[i], i < n
void add_f32(const float* a, const float* b, std::int64_t n, float* out, int num_threads, Isa isa);

// Packed bits (rows x words_for(c) uint64, tail bits 0) of x[r, j] - shift[j]: bit 1 where
// the difference is < 0 (the rule of pack_rows_f32).
void pack_shifted(const float* x, std::int64_t rows, std::int64_t c, const float* shift, std::uint64_t* out,
                  int num_threads, Isa isa);

// The packed sign of z over the channel concatenation of n_parts arrays (part i: rows x
// channels[i] floats) without forming it in memory: each row is joined in a small buffer
// and packed (a DenseNet layer's input: the sign of all the block's features so far).
// z = x * scale[j] + bias[j] (a BatchNorm; skipped if scale is null), then z - shift[j]
// (skipped if shift is null); bit 1 where z < 0. Per-channel vectors span the concatenation.
void pack_shifted_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t rows,
                        const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                        int num_threads, Isa isa);

// A DenseNet block's feature x (rows x c floats) packed once for every later layer that reads
// it: plane d < n_planes of row r at out + (r * n_planes + d) * words_for(c), the bits of
// pack_shifted_parts's rule under plane d's per-channel vectors (each c entries or null):
// z = x * scale[d] + bias[d] (skipped if scale[d] is null), then z - shift[d] (skipped if
// null); bit 1 where z < 0. Each x is read once, while it is still in cache, instead of once
// per later layer.
void pack_planes(const float* x, std::int64_t rows, std::int64_t c, int n_planes, const float* const* scale,
                 const float* const* bias, const float* const* shift, std::uint64_t* out, int num_threads, Isa isa);

// A BatchNorm whose output only a global mean and a sign read (Real-to-Binary Net's block
// input: its gate's squeeze and its binary conv's input), in one pass over x (n samples of hw
// rows of c floats), the BatchNorm's output never stored: z = x * scale[j] + bias[j] (two
// roundings); mean[b, j] = the sum of z over the sample's rows in order, from its first row
// (fpool2d's average with a kernel of the whole image), times the float32 1 / hw;
// bits[b, r] = pack_affine's of z - shift (shift may be null).
void affine_mean_sign(const float* x, std::int64_t n, std::int64_t hw, std::int64_t c, const float* scale,
                      const float* bias, const float* shift, float* mean, std::uint64_t* bits, int num_threads,
                      Isa isa);

// out (rows x out_words uint64) = the concatenation of n_parts bit strings per row: part i's
// nbits[i] bits start at src[i] + r * stride[i] + offset[i] (whole words, bits past nbits[i]
// are 0) and land at bit nbits[0] + ... + nbits[i - 1]; out's tail bits are 0. A layer's
// input gathered from the planes of its parts.
void concat_bits(const std::uint64_t* const* src, const std::int64_t* stride, const std::int64_t* offset,
                 const std::int64_t* nbits, int n_parts, std::int64_t rows, std::int64_t out_words, std::uint64_t* out,
                 int num_threads);

// out = the channel concatenation of n_parts arrays (part i: rows x channels[i] floats),
// through out[r, j] = x * scale[j] + bias[j] when scale is not null (a DenseNet transition's
// concat and BatchNorm in one pass; the same bits as the two steps apart).
void channel_affine_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t rows,
                          const float* scale, const float* bias, float* out, int num_threads, Isa isa);

// Elementwise on n floats, numpy's semantics: relu is maximum(x, 0) (x <= 0 -> +0, NaN kept),
// clip is minimum(maximum(x, low), high); sigmoid is 1 / (1 + exp(-x)) in double (std::exp),
// rounded once to float32 (a gate's squashing: the runtime's reference calls this kernel too).
void relu_f32(const float* x, std::int64_t n, float* out, int num_threads, Isa isa);
void clip_f32(const float* x, std::int64_t n, float low, float high, float* out, int num_threads, Isa isa);
void sigmoid_f32(const float* x, std::int64_t n, float* out, int num_threads, Isa isa);

// out[b, p, j] = x[b, p, j] * g[b, j] for n samples of hw rows of c channels: a per-sample
// channel gate (squeeze-and-excitation's product, Real-to-Binary Net).
void channel_gate(const float* x, const float* g, std::int64_t n, std::int64_t hw, std::int64_t c, float* out,
                  int num_threads, Isa isa);

}  // namespace onebit
