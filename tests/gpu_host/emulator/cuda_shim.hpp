// A CPU emulation of the CUDA built-ins that kernels/aes_gcm.cu uses, for tests only (no GPU here).
//
// Each thread block runs as blockDim.x std::threads; __syncthreads is a block barrier; warp shuffles
// exchange through per-warp slots between two warp barriers; __shared__ variables are function
// statics, which is sound because blocks run one after another. Integer intrinsics follow the CUDA
// Math API definitions. This checks the kernels' logic and indexing, not their timing or the compiler.
#pragma once

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define CCHET_TABLE_READ(table, word) emu::table_read(table, word)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
struct uint2 {
  unsigned int x, y;
};

inline thread_local dim3 threadIdx;
inline dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace emu {
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline std::vector<unsigned long long> warp_slots;
}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }

inline unsigned long long __shfl_xor_sync(unsigned int /*mask*/, unsigned long long v, int d) {
  const unsigned int t = threadIdx.x, warp = t / 32u, lane = t % 32u;
  emu::warp_slots[t] = v;
  emu::warp_barriers[warp]->arrive_and_wait();
  const unsigned long long other = emu::warp_slots[warp * 32u + (lane ^ static_cast<unsigned int>(d))];
  emu::warp_barriers[warp]->arrive_and_wait();
  return other;
}

// Byte i of the result is byte (s >> 4i) & 7 of the 8-byte value y:x (x holds bytes 0..3).
inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
  const unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned int r = 0;
  for (int i = 0; i < 4; ++i) {
    const unsigned int sel = (s >> (4 * i)) & 7u;
    r |= static_cast<unsigned int>((v >> (8 * sel)) & 0xffu) << (8 * i);
  }
  return r;
}

// (hi:lo) >> (shift & 31), low 32 bits.
inline unsigned int __funnelshift_r(unsigned int lo, unsigned int hi, unsigned int shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned int>(v >> (shift & 31u));
}

inline unsigned int atomicOr(unsigned int* p, unsigned int v) {
  return std::atomic_ref<unsigned int>(*p).fetch_or(v);
}

namespace emu {
// Every T-table read is checked: the word index's bank (index mod 32) must be the reading lane's id,
// which is what makes the lookups of a warp conflict-free whatever the secret indices are.
inline std::atomic<unsigned long long> table_reads{0};
inline std::atomic<unsigned long long> bank_violations{0};

inline unsigned int table_read(const unsigned int* table, unsigned int word) {
  table_reads.fetch_add(1, std::memory_order_relaxed);
  if ((word & 31u) != (threadIdx.x & 31u)) bank_violations.fetch_add(1, std::memory_order_relaxed);
  return table[word];
}

// Run kernel(args...) over grid x block threads, blocks in order, the threads of a block together.
template <typename F>
void launch(unsigned int grid, unsigned int block, F kernel) {
  blockDim.x = block;
  gridDim.x = grid;
  warp_slots.assign(block, 0ull);
  for (unsigned int b = 0; b < grid; ++b) {
    blockIdx.x = b;
    block_barrier = std::make_unique<std::barrier<>>(block);
    warp_barriers.clear();
    for (unsigned int w = 0; w < (block + 31u) / 32u; ++w) {
      warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    }
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned int t = 0; t < block; ++t) {
      threads.emplace_back([t, &kernel] {
        threadIdx.x = t;
        kernel();
      });
    }
    for (auto& th : threads) th.join();
  }
}
}  // namespace emu
