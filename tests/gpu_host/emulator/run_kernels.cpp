// Runs the extern "C" kernels of kernels/aes_gcm.cu on the CPU (see cuda_shim.hpp), for tests.
//
// Usage: run_kernels seal|open DIR. DIR holds sched.bin (u32 words), src.bin, dst.bin (initial output
// bytes) and params.txt ("first_index last_index n_chunks last_len chunk_log2 grid_segments"). Writes
// dst.bin, partial.bin, ek_j0.bin, verdicts.bin and status.bin back into DIR, and banks.txt: the number
// of T-table reads and how many of them left the reading lane's bank. params.txt may end with two more
// numbers, the grids of the segments and finish launches (default: one block per work item / chunk).
#include "cuda_shim.hpp"

#include "aes_gcm.cu"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

template <typename T>
static std::vector<T> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
static void write_file(const std::string& path, const std::vector<T>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: run_kernels seal|open DIR\n");
    return 2;
  }
  const std::string mode = argv[1], dir = std::string(argv[2]) + "/";
  std::vector<unsigned int> sched = read_file<unsigned int>(dir + "sched.bin");
  std::vector<unsigned char> src = read_file<unsigned char>(dir + "src.bin");
  std::vector<unsigned char> dst = read_file<unsigned char>(dir + "dst.bin");
  unsigned int first_index, n_chunks, last_len, chunk_log2, grid_segments;
  long long last_index;
  std::ifstream params(dir + "params.txt");
  params >> first_index >> last_index >> n_chunks >> last_len >> chunk_log2 >> grid_segments;
  unsigned int segments_grid = n_chunks * grid_segments, finish_grid = n_chunks;
  if (!(params >> segments_grid >> finish_grid)) {
    segments_grid = n_chunks * grid_segments;
    finish_grid = n_chunks;
  }
  // Keep both buffers 8-byte aligned, as on the device.
  std::vector<unsigned long long> src_store((src.size() + 7) / 8 + 1), dst_store((dst.size() + 7) / 8 + 1);
  unsigned char* s = reinterpret_cast<unsigned char*>(src_store.data());
  unsigned char* d = reinterpret_cast<unsigned char*>(dst_store.data());
  std::memcpy(s, src.data(), src.size());
  std::memcpy(d, dst.data(), dst.size());
  std::vector<unsigned int> partial(4u * n_chunks * grid_segments, 0u), ek_j0(4u * n_chunks, 0u),
      verdicts(n_chunks, 7u), status(1, 0u);
  const bool seal = mode == "seal";
  emu::launch(segments_grid, CCHET_LANES, [&] {
    if (seal) {
      cchet_gcm_seal_segments(sched.data(), s, d, first_index, last_index, n_chunks, last_len, chunk_log2,
                              grid_segments, partial.data(), ek_j0.data(), status.data());
    } else {
      cchet_gcm_open_segments(sched.data(), s, d, first_index, last_index, n_chunks, last_len, chunk_log2,
                              grid_segments, partial.data(), ek_j0.data(), status.data());
    }
  });
  emu::launch(finish_grid, CCHET_LANES, [&] {
    if (seal) {
      cchet_gcm_seal_finish(sched.data(), d, s, first_index, last_index, n_chunks, last_len, chunk_log2,
                            grid_segments, partial.data(), ek_j0.data(), verdicts.data());
    } else {
      cchet_gcm_open_finish(sched.data(), s, d, first_index, last_index, n_chunks, last_len, chunk_log2,
                            grid_segments, partial.data(), ek_j0.data(), verdicts.data());
    }
  });
  std::memcpy(dst.data(), d, dst.size());
  write_file(dir + "dst.bin", dst);
  write_file(dir + "partial.bin", partial);
  write_file(dir + "ek_j0.bin", ek_j0);
  write_file(dir + "verdicts.bin", verdicts);
  write_file(dir + "status.bin", status);
  std::ofstream(dir + "banks.txt") << emu::table_reads.load() << " " << emu::bank_violations.load() << "\n";
  return 0;
}
