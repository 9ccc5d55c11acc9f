// AES-256-GCM device code for cchet sealed streams (format v1, DESIGN.md section 3).
//
// Included by aes_gcm.cu; cchet/gpu/loader.py inlines it with #line directives, so it must stay free of
// host standard headers (NVRTC has none). Everything here is templated or inline device code; the
// extern "C" entry points live in aes_gcm.cu. The numpy mirror is cchet/gpu/reference.py: change both.
//
// Side channels. AES uses one 32-bit T-table, replicated once per lane of a warp: entry x of replica r
// sits at word 32*x + r, i.e. in shared-memory bank r, and lane r reads only replica r. No two lanes of a
// warp ever touch the same bank, whatever the (secret) indices, so a lookup never conflicts and takes
// the same time for every key and plaintext (unless the leaky CCHET_TABLE_LAYOUT_CONFLICT=1 positive
// control is compiled in). GHASH uses no table at all: carry-less products come from ordinary integer
// multiplies of operands masked to every fourth bit (see gf128.py).
#pragma once

// Word offsets into the per-stream schedule (mirrored in cchet/gpu/schedule.py; a test compares).
#define CCHET_SCHED_RK 0
#define CCHET_SCHED_AAD 60
#define CCHET_SCHED_H1 68
#define CCHET_SCHED_H2 72
#define CCHET_SCHED_HLANES 76
#define CCHET_SCHED_HSEG 80
#define CCHET_SCHED_PREFIX 84
#define CCHET_SCHED_GEOM 86
#define CCHET_SCHED_POW2 88
#define CCHET_SCHED_POW2_COUNT 24
#define CCHET_SCHED_LANEPOW 184

// Threads per block of every entry point (cchet.gpu.geometry.DEFAULT_LANES; the host launches nothing
// else). Overridable only so that the CPU emulation can run the same code on smaller blocks.
#ifndef CCHET_LANES
#define CCHET_LANES 256
#endif
// Status bits the kernels may set.
#define CCHET_STATUS_GEOMETRY 1u

namespace cchet {

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned char u8;

struct u128 {
  u64 hi;
  u64 lo;
};

__device__ __forceinline__ u32 bswap32(u32 x) { return __byte_perm(x, 0u, 0x0123u); }

__device__ __forceinline__ u32 rotr32(u32 x, u32 n) { return __funnelshift_r(x, x, n); }

// ---------------------------------------------------------------------------------------------------
// AES-256 (FIPS-197)
// ---------------------------------------------------------------------------------------------------

// Product in GF(2^8) mod x^8 + x^4 + x^3 + x + 1, without branches on the operands.
__device__ __forceinline__ u32 gf8_mul(u32 a, u32 b) {
  u32 p = 0u;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    p ^= a & (0u - (b & 1u));
    a = ((a << 1) ^ (0x1bu & (0u - ((a >> 7) & 1u)))) & 0xffu;
    b >>= 1;
  }
  return p;
}

// x^254: the inverse of x (0 maps to 0), by a fixed sequence of squarings and products.
__device__ __forceinline__ u32 gf8_inverse(u32 x) {
  u32 square = x;
  u32 result = 1u;
#pragma unroll
  for (int i = 1; i < 8; ++i) {
    square = gf8_mul(square, square);  // x^(2^i)
    result = gf8_mul(result, square);
  }
  return result;
}

// S-box entry from its definition: the affine map of FIPS-197 section 5.1.1 on the inverse.
__device__ __forceinline__ u32 sbox_entry(u32 x) {
  u32 b = gf8_inverse(x);
  u32 r = b;
#pragma unroll
  for (int i = 1; i < 5; ++i) {
    r ^= ((b << i) | (b >> (8 - i))) & 0xffu;
  }
  return r ^ 0x63u;
}

// Replicas of the table: one per lane of a warp (one per shared-memory bank).
constexpr u32 kReplicas = 32u;
constexpr u32 kTableWords = 256u * kReplicas;

// CCHET_TABLE_LAYOUT_CONFLICT=1 is a deliberately LEAKY layout for the per-key timing test's positive
// control, never the default: replica r holds entry x at word 256r + x, i.e. in bank x mod 32, so two lanes
// whose secret indices differ but agree mod 32 hit the same bank at different addresses and serialise.
// The bytes it computes are the same; only the timing (and the emulator's bank check) differ.
#ifndef CCHET_TABLE_LAYOUT_CONFLICT
#define CCHET_TABLE_LAYOUT_CONFLICT 0
#endif

// Word of entry x in replica r.
__device__ __forceinline__ u32 table_word(u32 r, u32 x) {
#if CCHET_TABLE_LAYOUT_CONFLICT
  return (r << 8) | x;  // bank x mod 32: secret-dependent conflicts
#else
  return (x << 5) | r;  // bank r: conflict-free whatever x is
#endif
}

// Fill every replica r with T0. Each thread computes whole entries and writes their replicas in a
// lane-rotated order, so even the prologue's stores do not conflict (in the default layout).
template <int LANES>
__device__ __forceinline__ void build_table(u32* table) {
  const u32 lane = threadIdx.x & (kReplicas - 1u);
  for (u32 x = threadIdx.x; x < 256u; x += LANES) {
    const u32 s = sbox_entry(x);
    const u32 t = (gf8_mul(s, 2u) << 24) | (s << 16) | (s << 8) | gf8_mul(s, 3u);
    for (u32 i = 0; i < kReplicas; ++i) {
      table[table_word((i + lane) & (kReplicas - 1u), x)] = t;
    }
  }
}

// One lookup in this lane's replica: in the default layout word 32x + lane, which is in bank `lane`.
// CCHET_TABLE_READ lets the CPU emulation in tests/gpu_host check that every read of lane l is in bank l;
// on the GPU it is a load.
#ifndef CCHET_TABLE_READ
#define CCHET_TABLE_READ(table, word) ((table)[word])
#endif
__device__ __forceinline__ u32 t0(const u32* table, u32 lane, u32 x) {
  return CCHET_TABLE_READ(table, table_word(lane, x));
}

__device__ __forceinline__ u32 sbox(const u32* table, u32 lane, u32 x) {
  return (t0(table, lane, x) >> 16) & 0xffu;
}

// Encrypt one block (big-endian words) under round keys rk[60] (shared, read by all lanes alike).
__device__ __forceinline__ void aes256_encrypt(const u32* table, const u32* rk, u32 lane, const u32 in[4],
                                               u32 out[4]) {
  u32 s0 = in[0] ^ rk[0];
  u32 s1 = in[1] ^ rk[1];
  u32 s2 = in[2] ^ rk[2];
  u32 s3 = in[3] ^ rk[3];
#pragma unroll
  for (int r = 1; r < 14; ++r) {
    const u32 n0 = t0(table, lane, s0 >> 24) ^ rotr32(t0(table, lane, (s1 >> 16) & 0xffu), 8) ^
                   rotr32(t0(table, lane, (s2 >> 8) & 0xffu), 16) ^ rotr32(t0(table, lane, s3 & 0xffu), 24) ^
                   rk[4 * r + 0];
    const u32 n1 = t0(table, lane, s1 >> 24) ^ rotr32(t0(table, lane, (s2 >> 16) & 0xffu), 8) ^
                   rotr32(t0(table, lane, (s3 >> 8) & 0xffu), 16) ^ rotr32(t0(table, lane, s0 & 0xffu), 24) ^
                   rk[4 * r + 1];
    const u32 n2 = t0(table, lane, s2 >> 24) ^ rotr32(t0(table, lane, (s3 >> 16) & 0xffu), 8) ^
                   rotr32(t0(table, lane, (s0 >> 8) & 0xffu), 16) ^ rotr32(t0(table, lane, s1 & 0xffu), 24) ^
                   rk[4 * r + 2];
    const u32 n3 = t0(table, lane, s3 >> 24) ^ rotr32(t0(table, lane, (s0 >> 16) & 0xffu), 8) ^
                   rotr32(t0(table, lane, (s1 >> 8) & 0xffu), 16) ^ rotr32(t0(table, lane, s2 & 0xffu), 24) ^
                   rk[4 * r + 3];
    s0 = n0;
    s1 = n1;
    s2 = n2;
    s3 = n3;
  }
  out[0] = ((sbox(table, lane, s0 >> 24) << 24) | (sbox(table, lane, (s1 >> 16) & 0xffu) << 16) |
            (sbox(table, lane, (s2 >> 8) & 0xffu) << 8) | sbox(table, lane, s3 & 0xffu)) ^
           rk[56];
  out[1] = ((sbox(table, lane, s1 >> 24) << 24) | (sbox(table, lane, (s2 >> 16) & 0xffu) << 16) |
            (sbox(table, lane, (s3 >> 8) & 0xffu) << 8) | sbox(table, lane, s0 & 0xffu)) ^
           rk[57];
  out[2] = ((sbox(table, lane, s2 >> 24) << 24) | (sbox(table, lane, (s3 >> 16) & 0xffu) << 16) |
            (sbox(table, lane, (s0 >> 8) & 0xffu) << 8) | sbox(table, lane, s1 & 0xffu)) ^
           rk[58];
  out[3] = ((sbox(table, lane, s3 >> 24) << 24) | (sbox(table, lane, (s0 >> 16) & 0xffu) << 16) |
            (sbox(table, lane, (s1 >> 8) & 0xffu) << 8) | sbox(table, lane, s2 & 0xffu)) ^
           rk[59];
}

// ---------------------------------------------------------------------------------------------------
// GF(2^128), GCM's bit order: an element is the block read as a big-endian 128-bit integer.
// ---------------------------------------------------------------------------------------------------

__device__ __forceinline__ u64 wide(u32 a, u32 b) { return static_cast<u64>(a) * static_cast<u64>(b); }

// Carry-less 32 x 32 -> 64: sixteen integer products of operands masked to every fourth bit. A product
// column holds at most 8 one-bits, which fit before the next column of the same residue, so carries
// never reach a bit that the final masks keep.
__device__ __forceinline__ u64 clmul32(u32 x, u32 y) {
  const u32 x0 = x & 0x11111111u, x1 = x & 0x22222222u, x2 = x & 0x44444444u, x3 = x & 0x88888888u;
  const u32 y0 = y & 0x11111111u, y1 = y & 0x22222222u, y2 = y & 0x44444444u, y3 = y & 0x88888888u;
  const u64 z0 = wide(x0, y0) ^ wide(x1, y3) ^ wide(x2, y2) ^ wide(x3, y1);
  const u64 z1 = wide(x0, y1) ^ wide(x1, y0) ^ wide(x2, y3) ^ wide(x3, y2);
  const u64 z2 = wide(x0, y2) ^ wide(x1, y1) ^ wide(x2, y0) ^ wide(x3, y3);
  const u64 z3 = wide(x0, y3) ^ wide(x1, y2) ^ wide(x2, y1) ^ wide(x3, y0);
  return (z0 & 0x1111111111111111ull) | (z1 & 0x2222222222222222ull) | (z2 & 0x4444444444444444ull) |
         (z3 & 0x8888888888888888ull);
}

// Carry-less 64 x 64 -> 128 by Karatsuba over clmul32.
__device__ __forceinline__ u128 clmul64(u64 x, u64 y) {
  const u32 x0 = static_cast<u32>(x), x1 = static_cast<u32>(x >> 32);
  const u32 y0 = static_cast<u32>(y), y1 = static_cast<u32>(y >> 32);
  const u64 lo = clmul32(x0, y0);
  const u64 hi = clmul32(x1, y1);
  const u64 mid = clmul32(x0 ^ x1, y0 ^ y1) ^ lo ^ hi;
  u128 r;
  r.hi = hi ^ (mid >> 32);
  r.lo = lo ^ (mid << 32);
  return r;
}

// Field product: Karatsuba over clmul64, shift the 255-bit integer product left by one, then fold the
// upper half down with x^128 = x^7 + x^2 + x + 1 twice (multiplying by x^j is a right shift by j).
__device__ __forceinline__ u128 gf_mul(u128 a, u128 b) {
  const u128 l = clmul64(a.lo, b.lo);
  const u128 h = clmul64(a.hi, b.hi);
  u128 m = clmul64(a.lo ^ a.hi, b.lo ^ b.hi);
  m.hi ^= l.hi ^ h.hi;
  m.lo ^= l.lo ^ h.lo;
  u64 p3 = h.hi, p2 = h.lo ^ m.hi, p1 = l.hi ^ m.lo, p0 = l.lo;
  p3 = (p3 << 1) | (p2 >> 63);
  p2 = (p2 << 1) | (p1 >> 63);
  p1 = (p1 << 1) | (p0 >> 63);
  p0 = p0 << 1;
  const u64 e1 = (p0 << 63) ^ (p0 << 62) ^ (p0 << 57);
  u64 r1 = p1 ^ (p1 >> 1) ^ (p1 >> 2) ^ (p1 >> 7);
  u64 r0 = p0 ^ (p0 >> 1) ^ (p0 >> 2) ^ (p0 >> 7);
  r0 ^= (p1 << 63) ^ (p1 << 62) ^ (p1 << 57);
  r1 ^= e1 ^ (e1 >> 1) ^ (e1 >> 2) ^ (e1 >> 7);
  r0 ^= (e1 << 63) ^ (e1 << 62) ^ (e1 << 57);
  u128 out;
  out.hi = p3 ^ r1;
  out.lo = p2 ^ r0;
  return out;
}

__device__ __forceinline__ u128 gf_xor(u128 a, u128 b) {
  a.hi ^= b.hi;
  a.lo ^= b.lo;
  return a;
}

__device__ __forceinline__ u128 gf_from_words(const u32 w[4]) {
  u128 r;
  r.hi = (static_cast<u64>(w[0]) << 32) | w[1];
  r.lo = (static_cast<u64>(w[2]) << 32) | w[3];
  return r;
}

__device__ __forceinline__ u128 gf_load(const u32* p) {
  u32 w[4] = {p[0], p[1], p[2], p[3]};
  return gf_from_words(w);
}

__device__ __forceinline__ void gf_to_words(u128 a, u32 w[4]) {
  w[0] = static_cast<u32>(a.hi >> 32);
  w[1] = static_cast<u32>(a.hi);
  w[2] = static_cast<u32>(a.lo >> 32);
  w[3] = static_cast<u32>(a.lo);
}

// ---------------------------------------------------------------------------------------------------
// Memory: 16-byte blocks as big-endian words. Full blocks need 8-byte alignment (checked on the host).
// ---------------------------------------------------------------------------------------------------

__device__ __forceinline__ void load_block(const u8* p, u32 w[4]) {
  const uint2 a = reinterpret_cast<const uint2*>(p)[0];
  const uint2 b = reinterpret_cast<const uint2*>(p)[1];
  w[0] = bswap32(a.x);
  w[1] = bswap32(a.y);
  w[2] = bswap32(b.x);
  w[3] = bswap32(b.y);
}

__device__ __forceinline__ void store_block(u8* p, const u32 w[4]) {
  uint2 a, b;
  a.x = bswap32(w[0]);
  a.y = bswap32(w[1]);
  b.x = bswap32(w[2]);
  b.y = bswap32(w[3]);
  reinterpret_cast<uint2*>(p)[0] = a;
  reinterpret_cast<uint2*>(p)[1] = b;
}

// The first n < 16 bytes; the rest of the block reads as zero. Fully unrolled with predicated loads, so
// the words stay in registers and no byte past n is read.
__device__ __forceinline__ void load_partial(const u8* p, u32 n, u32 w[4]) {
#pragma unroll
  for (u32 k = 0; k < 4u; ++k) {
    u32 word = 0u;
#pragma unroll
    for (u32 b = 0; b < 4u; ++b) {
      const u32 i = 4u * k + b;
      const u32 byte = i < n ? static_cast<u32>(p[i]) : 0u;
      word |= byte << (24u - 8u * b);
    }
    w[k] = word;
  }
}

__device__ __forceinline__ void store_partial(u8* p, u32 n, const u32 w[4]) {
#pragma unroll
  for (u32 k = 0; k < 4u; ++k) {
#pragma unroll
    for (u32 b = 0; b < 4u; ++b) {
      const u32 i = 4u * k + b;
      if (i < n) p[i] = static_cast<u8>(w[k] >> (24u - 8u * b));
    }
  }
}

// Zero all but the first n bytes of a block.
__device__ __forceinline__ void keep_bytes(u32 w[4], u32 n) {
#pragma unroll
  for (u32 k = 0; k < 4u; ++k) {
    const u32 have = n > 4u * k ? n - 4u * k : 0u;
    const u32 mask = have >= 4u ? 0xffffffffu : ~(0xffffffffu >> (8u * have));
    w[k] &= have == 0u ? 0u : mask;
  }
}

// ---------------------------------------------------------------------------------------------------
// One launch: chunks first_index .. first_index + n_chunks - 1 of one stream.
//
// A grid is never larger than what the device holds resident at once (cchet.gpu.geometry.plan): every
// block walks the launch's work items with a stride of gridDim.x, so the T-table prologue is paid once per
// block and no launch ends in a straggling wave. Byte offsets are 64-bit, so one launch may span more than
// 4 GiB and a chunk's stream index may put it anywhere in a stream of up to 2^32 chunks.
// ---------------------------------------------------------------------------------------------------

struct Batch {
  u32 first_index;   // stream index of the launch's first chunk
  long long last_index;  // stream index of the stream's final chunk if it is in this launch, else -1
  u32 n_chunks;
  u32 last_len;      // plaintext bytes of the launch's last chunk (0..chunk size); the others are full
  u32 chunk_log2;
  u32 grid_segments; // segments of a full chunk: work items per chunk (partial sums are laid out by it)
};

__device__ __forceinline__ u32 chunk_len(const Batch& b, u32 c) {
  return c + 1u == b.n_chunks ? b.last_len : (1u << b.chunk_log2);
}

// nonce_prefix || BE32(index) || last, as three big-endian words.
__device__ __forceinline__ void chunk_nonce(const u32* sched, const Batch& b, u32 c, u32 n[3]) {
  const u32 index = b.first_index + c;
  const u32 last = static_cast<long long>(index) == b.last_index ? 1u : 0u;
  n[0] = sched[CCHET_SCHED_PREFIX];
  n[1] = sched[CCHET_SCHED_PREFIX + 1] | (index >> 24);
  n[2] = (index << 8) | last;
}

__device__ __forceinline__ u128 warp_xor(u128 v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    v.hi ^= __shfl_xor_sync(0xffffffffu, v.hi, d);
    v.lo ^= __shfl_xor_sync(0xffffffffu, v.lo, d);
  }
  return v;
}

// The product of the 32 lanes' values of a warp, in every lane (the field product commutes).
__device__ __forceinline__ u128 warp_product(u128 v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    u128 o;
    o.hi = __shfl_xor_sync(0xffffffffu, v.hi, d);
    o.lo = __shfl_xor_sync(0xffffffffu, v.lo, d);
    v = gf_mul(v, o);
  }
  return v;
}

__device__ __forceinline__ u128 gf_zero() {
  u128 r;
  r.hi = 0ull;
  r.lo = 0ull;
  return r;
}

__device__ __forceinline__ u128 gf_one() {
  u128 r;
  r.hi = 0x8000000000000000ull;  // x^0
  r.lo = 0ull;
  return r;
}

template <int N>
struct Log2 {
  static constexpr u32 value = 1u + Log2<N / 2>::value;
};
template <>
struct Log2<1> {
  static constexpr u32 value = 0u;
};

// CTR and the GHASH partial sums of segments of chunks, one (chunk, segment) work item at a time per
// thread block. SEAL reads plaintext and writes ciphertext into the sealed body; !SEAL reads the sealed
// body and writes plaintext, which the finish kernel zeroes again if the chunk's tag fails. Partial sums
// and E_K(J0) go to global memory.
template <int LANES, bool SEAL>
__device__ void gcm_segments(const u32* __restrict__ sched, const u8* __restrict__ src, u8* __restrict__ dst,
                             const Batch b, u32* __restrict__ partial, u32* __restrict__ ek_j0,
                             u32* __restrict__ status) {
  __shared__ u32 table[kTableWords];
  __shared__ u32 rk[60];
  __shared__ u128 warp_sums[LANES / 32];

  const u32 seg_blocks = sched[CCHET_SCHED_GEOM + 1];
  if (blockDim.x != static_cast<u32>(LANES) || sched[CCHET_SCHED_GEOM] != static_cast<u32>(LANES) ||
      seg_blocks == 0u || seg_blocks % LANES != 0u) {
    if (threadIdx.x == 0u) atomicOr(status, CCHET_STATUS_GEOMETRY);
    return;
  }

  build_table<LANES>(table);
  for (u32 i = threadIdx.x; i < 60u; i += LANES) rk[i] = sched[CCHET_SCHED_RK + i];
  __syncthreads();

  const u32 t = threadIdx.x;
  const u32 lane = t & 31u;
  const u64 cs = 1ull << b.chunk_log2;
  const u128 h_lanes = gf_load(sched + CCHET_SCHED_HLANES);
  const u32 steps = seg_blocks / LANES;
  const u64 items = static_cast<u64>(b.n_chunks) * b.grid_segments;
  for (u64 item = blockIdx.x; item < items; item += gridDim.x) {
    const u32 c = static_cast<u32>(item / b.grid_segments);
    const u32 g = static_cast<u32>(item % b.grid_segments);
    const u32 len = chunk_len(b, c);
    const u32 m = (len + 15u) / 16u;
    const u32 segs = (m + seg_blocks - 1u) / seg_blocks;
    if (g >= segs && g != 0u) continue;  // uniform per block; g == 0 always runs (it computes E_K(J0))
    if (segs > b.grid_segments) {        // the schedule's segments do not fit the launch's layout
      if (t == 0u) atomicOr(status, CCHET_STATUS_GEOMETRY);
      continue;
    }
    const u32 pad = segs * seg_blocks - m;
    const u8* in = src + static_cast<u64>(c) * (SEAL ? cs : cs + 16u);
    u8* out = dst + static_cast<u64>(c) * (SEAL ? cs + 16u : cs);
    u32 nonce[3];
    chunk_nonce(sched, b, c, nonce);

    u128 acc = gf_zero();
    for (u32 k = 0; k < steps; ++k) {
      const long long j = static_cast<long long>(g) * seg_blocks + static_cast<long long>(k) * LANES + t -
                          static_cast<long long>(pad);
      u32 x[4] = {0u, 0u, 0u, 0u};
      if (j >= 0 && j < static_cast<long long>(m)) {
        const u32 off = static_cast<u32>(j) * 16u;
        const u32 n = len - off < 16u ? len - off : 16u;
        const u32 counter[4] = {nonce[0], nonce[1], nonce[2], static_cast<u32>(j) + 2u};
        u32 ks[4];
        aes256_encrypt(table, rk, lane, counter, ks);
        u32 data[4];
        if (n == 16u) {
          load_block(in + off, data);
        } else {
          load_partial(in + off, n, data);
        }
        u32 y[4] = {data[0] ^ ks[0], data[1] ^ ks[1], data[2] ^ ks[2], data[3] ^ ks[3]};
        if (n == 16u) {
          store_block(out + off, y);
        } else {
          keep_bytes(y, n);
          store_partial(out + off, n, y);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) x[q] = SEAL ? y[q] : data[q];
      }
      acc = gf_xor(gf_mul(acc, h_lanes), gf_from_words(x));
    }
    // Scale by this thread's power of H; then the block's sum needs only XORs.
    acc = gf_mul(acc, gf_load(sched + CCHET_SCHED_LANEPOW + 4u * t));
    acc = warp_xor(acc);
    if (lane == 0u) warp_sums[t >> 5] = acc;
    __syncthreads();
    if (t == 0u) {
      u128 sum = warp_sums[0];
      for (u32 w = 1; w < LANES / 32u; ++w) sum = gf_xor(sum, warp_sums[w]);
      u32 words[4];
      gf_to_words(sum, words);
      u32* p = partial + 4ull * (static_cast<u64>(c) * b.grid_segments + g);
      for (int q = 0; q < 4; ++q) p[q] = words[q];
      if (g == 0u) {
        const u32 j0[4] = {nonce[0], nonce[1], nonce[2], 1u};
        u32 e[4];
        aes256_encrypt(table, rk, lane, j0, e);
        for (int q = 0; q < 4; ++q) ek_j0[4ull * c + q] = e[q];
      }
    }
    __syncthreads();  // warp_sums is rewritten by the block's next item
  }
}

// Combine each chunk's partial sums into its tag, one chunk at a time per thread block, all threads
// at once. SEAL writes the tag after the chunk's ciphertext. !SEAL compares it with the stored tag in
// constant time, records the verdict (1 = authentic) and, on failure, zeroes the chunk's plaintext
// before the launch ends.
//
// Q = sum_g P_g . (H^S)^(segs - 1 - g). With the virtual index v = g + pad (pad zero sums in front, so
// that LANES divides the count), thread t Horner-combines v = t, t + LANES, ... with (H^S)^LANES; a tree
// over the threads then joins neighbours with (H^S)^(2^i) at level i. Meanwhile warp 1 computes
// A . H^(m + 2) + L . H, H^(m + 2) as the product of the public powers H^(2^i) its lanes hold.
template <int LANES, bool SEAL>
__device__ void gcm_finish(const u32* __restrict__ sched, u8* __restrict__ sealed, u8* __restrict__ plain,
                           const Batch b, const u32* __restrict__ partial, const u32* __restrict__ ek_j0,
                           u32* __restrict__ verdicts) {
  static_assert(LANES >= 64 && (LANES & (LANES - 1)) == 0, "the finish kernel needs two warps or more");
  constexpr u32 kLog2Lanes = Log2<LANES>::value;
  __shared__ u128 sums[LANES];
  __shared__ u128 seg_pow[kLog2Lanes + 1];  // (H^S)^(2^i)
  __shared__ u128 a_term;
  __shared__ u32 authentic;

  const u32 t = threadIdx.x;
  const u32 seg_blocks = sched[CCHET_SCHED_GEOM + 1];
  if (seg_blocks == 0u || seg_blocks % LANES != 0u) return;  // refused: the segments kernel set the status
  if (t == 0u) {
    u128 p = gf_load(sched + CCHET_SCHED_HSEG);
    for (u32 i = 0; i <= kLog2Lanes; ++i) {
      seg_pow[i] = p;
      p = gf_mul(p, p);
    }
  }
  __syncthreads();
  const u128 h = gf_load(sched + CCHET_SCHED_H1);
  const u64 cs = 1ull << b.chunk_log2;
  for (u32 c = blockIdx.x; c < b.n_chunks; c += gridDim.x) {
    const u32 len = chunk_len(b, c);
    const u32 m = (len + 15u) / 16u;
    // At most grid_segments sums exist (more: a refused launch, flagged by the segments kernel).
    const u32 all_segs = (m + seg_blocks - 1u) / seg_blocks;
    const u32 segs = all_segs < b.grid_segments ? all_segs : b.grid_segments;
    const u32 rounds = (segs + LANES - 1u) / LANES;
    const u32 pad = rounds * LANES - segs;
    const u32* p = partial + 4ull * (static_cast<u64>(c) * b.grid_segments);

    u128 acc = gf_zero();
    for (u32 k = 0; k < rounds; ++k) {
      const u32 v = k * LANES + t;
      const u128 x = v >= pad ? gf_load(p + 4u * (v - pad)) : gf_zero();
      acc = k == 0u ? x : gf_xor(gf_mul(acc, seg_pow[kLog2Lanes]), x);
    }
    sums[t] = acc;
    if ((t >> 5) == 1u) {
      const u32 lane = t & 31u;
      const u32 e = m + 2u;  // < 2^24 for every chunk size the format allows
      const u128 f = lane < CCHET_SCHED_POW2_COUNT && ((e >> lane) & 1u)
                         ? gf_load(sched + CCHET_SCHED_POW2 + 4u * lane)
                         : gf_one();
      const u128 h_e = warp_product(f);
      if (lane == 0u) {
        const u128 a =
            gf_xor(gf_mul(gf_load(sched + CCHET_SCHED_AAD), h), gf_load(sched + CCHET_SCHED_AAD + 4));
        u128 len_block;
        len_block.hi = 256ull;  // 32 AAD bytes, in bits
        len_block.lo = static_cast<u64>(len) * 8ull;
        a_term = gf_xor(gf_mul(a, h_e), gf_mul(len_block, h));
      }
    }
    __syncthreads();
    for (u32 i = 0; i < kLog2Lanes; ++i) {
      const u32 stride = 1u << i;
      if ((t & (2u * stride - 1u)) == 0u) sums[t] = gf_xor(gf_mul(sums[t], seg_pow[i]), sums[t + stride]);
      __syncthreads();
    }
    u8* tag_at = sealed + static_cast<u64>(c) * (cs + 16u) + len;
    if (t == 0u) {
      u128 s = gf_xor(a_term, gf_mul(sums[0], gf_load(sched + CCHET_SCHED_H2)));
      s = gf_xor(s, gf_load(ek_j0 + 4ull * c));
      u32 tag[4];
      gf_to_words(s, tag);
      if (SEAL) {
        store_partial(tag_at, 16u, tag);
        authentic = 1u;
      } else {
        u32 stored[4];
        load_partial(tag_at, 16u, stored);
        const u32 diff =
            (stored[0] ^ tag[0]) | (stored[1] ^ tag[1]) | (stored[2] ^ tag[2]) | (stored[3] ^ tag[3]);
        authentic = diff == 0u ? 1u : 0u;
        verdicts[c] = authentic;
      }
    }
    __syncthreads();
    if (!SEAL && authentic == 0u) {
      u8* q = plain + static_cast<u64>(c) * cs;
      for (u32 i = t; i < len; i += LANES) q[i] = 0u;
    }
    __syncthreads();  // sums, a_term and authentic are rewritten by the block's next chunk
  }
}

}  // namespace cchet
