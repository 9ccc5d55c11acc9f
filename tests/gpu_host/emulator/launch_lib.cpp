// The emulated kernels as a shared library, launched like cuLaunchKernel: args[i] points at parameter i.
// For the SIMULATED CuPy of tests/gpu_host/fake_cupy.py. cchet_emu_signature() tells the caller each
// kernel's parameter kinds so that it can check the types it passes, as CUDA would not.
#include "cuda_shim.hpp"

#include "aes_gcm.cu"

#include <cstring>

namespace {
template <typename T>
T arg(void** a, int i) {
  return *static_cast<T*>(a[i]);
}
using cu8 = const unsigned char*;
using u8p = unsigned char*;
using cu32 = const unsigned int*;
using u32p = unsigned int*;
using u32 = unsigned int;
using i64 = long long;
}  // namespace

// p = pointer, u = unsigned int, q = long long; one letter per parameter.
extern "C" const char* cchet_emu_signature(const char* name) {
  if (std::strcmp(name, "cchet_gcm_seal_segments") == 0 || std::strcmp(name, "cchet_gcm_open_segments") == 0 ||
      std::strcmp(name, "cchet_gcm_seal_finish") == 0 || std::strcmp(name, "cchet_gcm_open_finish") == 0) {
    return "pppuquuuuppp";
  }
  return nullptr;
}

extern "C" int cchet_emu_launch(const char* name, unsigned int grid, unsigned int block, void** a) {
  const std::string n(name);
  if (n == "cchet_gcm_seal_segments") {
    emu::launch(grid, block, [&] {
      cchet_gcm_seal_segments(arg<cu32>(a, 0), arg<cu8>(a, 1), arg<u8p>(a, 2), arg<u32>(a, 3), arg<i64>(a, 4),
                              arg<u32>(a, 5), arg<u32>(a, 6), arg<u32>(a, 7), arg<u32>(a, 8), arg<u32p>(a, 9),
                              arg<u32p>(a, 10), arg<u32p>(a, 11));
    });
  } else if (n == "cchet_gcm_open_segments") {
    emu::launch(grid, block, [&] {
      cchet_gcm_open_segments(arg<cu32>(a, 0), arg<cu8>(a, 1), arg<u8p>(a, 2), arg<u32>(a, 3), arg<i64>(a, 4),
                              arg<u32>(a, 5), arg<u32>(a, 6), arg<u32>(a, 7), arg<u32>(a, 8), arg<u32p>(a, 9),
                              arg<u32p>(a, 10), arg<u32p>(a, 11));
    });
  } else if (n == "cchet_gcm_seal_finish") {
    emu::launch(grid, block, [&] {
      cchet_gcm_seal_finish(arg<cu32>(a, 0), arg<u8p>(a, 1), arg<u8p>(a, 2), arg<u32>(a, 3), arg<i64>(a, 4),
                            arg<u32>(a, 5), arg<u32>(a, 6), arg<u32>(a, 7), arg<u32>(a, 8), arg<cu32>(a, 9),
                            arg<cu32>(a, 10), arg<u32p>(a, 11));
    });
  } else if (n == "cchet_gcm_open_finish") {
    emu::launch(grid, block, [&] {
      cchet_gcm_open_finish(arg<cu32>(a, 0), arg<u8p>(a, 1), arg<u8p>(a, 2), arg<u32>(a, 3), arg<i64>(a, 4),
                            arg<u32>(a, 5), arg<u32>(a, 6), arg<u32>(a, 7), arg<u32>(a, 8), arg<cu32>(a, 9),
                            arg<cu32>(a, 10), arg<u32p>(a, 11));
    });
  } else {
    return 1;
  }
  return 0;
}
