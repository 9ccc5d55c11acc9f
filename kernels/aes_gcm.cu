// extern "C" entry points of the AES-256-GCM kernels for cchet sealed streams.
//
// A launch seals or opens chunks first_index .. first_index + n_chunks - 1 of one stream in two steps on
// one CUDA stream: *_segments does CTR and the GHASH partial sums of n_chunks * grid_segments work items
// (one chunk segment each), *_finish combines each chunk's sums, writes or checks its tag and, when
// opening, zeroes every chunk whose tag fails and reports per-chunk verdicts. Both take any grid of
// CCHET_LANES-thread blocks (blocks loop over the items), and the host launches no more blocks than the
// device holds resident. Nothing downstream on the stream runs before the verdicts exist. Layouts:
// plaintext chunks at c * chunk_size, sealed chunks (ciphertext || tag) at c * (chunk_size + 16); both
// 8-byte aligned; offsets are 64-bit.
//
// Compile-time options (cchet.gpu.loader.module(..., defines=...)): CCHET_MIN_BLOCKS_PER_SM below, and
// CCHET_TABLE_LAYOUT_CONFLICT=1, a deliberately bank-conflicting T-table layout that exists only as the
// positive control of the per-key timing test (aes_gcm.cuh); never use it for data.
#include "aes_gcm.cuh"

// Resident blocks per SM that ptxas must allow for every entry point (4 caps them at 64 registers a
// thread, the geometry's default of four blocks per SM; with nvcc 13.0 for sm_90 none of the four then
// spills). A knob for the device benchmarks; the host plans grids from the occupancy the driver reports.
#ifndef CCHET_MIN_BLOCKS_PER_SM
#define CCHET_MIN_BLOCKS_PER_SM 4
#endif

#define CCHET_BATCH_PARAMS                                                                                \
  unsigned int first_index, long long last_index, unsigned int n_chunks, unsigned int last_len,          \
      unsigned int chunk_log2, unsigned int grid_segments

#define CCHET_BATCH {first_index, last_index, n_chunks, last_len, chunk_log2, grid_segments}

extern "C" __global__ void __launch_bounds__(CCHET_LANES, CCHET_MIN_BLOCKS_PER_SM)
    cchet_gcm_seal_segments(const unsigned int* sched, const unsigned char* plain, unsigned char* sealed,
                            CCHET_BATCH_PARAMS, unsigned int* partial, unsigned int* ek_j0,
                            unsigned int* status) {
  cchet::gcm_segments<CCHET_LANES, true>(sched, plain, sealed, cchet::Batch CCHET_BATCH, partial, ek_j0,
                                         status);
}

extern "C" __global__ void __launch_bounds__(CCHET_LANES, CCHET_MIN_BLOCKS_PER_SM)
    cchet_gcm_open_segments(const unsigned int* sched, const unsigned char* sealed, unsigned char* plain,
                            CCHET_BATCH_PARAMS, unsigned int* partial, unsigned int* ek_j0,
                            unsigned int* status) {
  cchet::gcm_segments<CCHET_LANES, false>(sched, sealed, plain, cchet::Batch CCHET_BATCH, partial, ek_j0,
                                          status);
}

extern "C" __global__ void __launch_bounds__(CCHET_LANES, CCHET_MIN_BLOCKS_PER_SM)
    cchet_gcm_seal_finish(const unsigned int* sched, unsigned char* sealed, unsigned char* plain,
                          CCHET_BATCH_PARAMS, const unsigned int* partial, const unsigned int* ek_j0,
                          unsigned int* verdicts) {
  cchet::gcm_finish<CCHET_LANES, true>(sched, sealed, plain, cchet::Batch CCHET_BATCH, partial, ek_j0,
                                       verdicts);
}

extern "C" __global__ void __launch_bounds__(CCHET_LANES, CCHET_MIN_BLOCKS_PER_SM)
    cchet_gcm_open_finish(const unsigned int* sched, unsigned char* sealed, unsigned char* plain,
                          CCHET_BATCH_PARAMS, const unsigned int* partial, const unsigned int* ek_j0,
                          unsigned int* verdicts) {
  cchet::gcm_finish<CCHET_LANES, false>(sched, sealed, plain, cchet::Batch CCHET_BATCH, partial, ek_j0,
                                        verdicts);
}
