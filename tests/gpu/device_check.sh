#!/usr/bin/env bash
# The device checks of the GPU issue, as one script: run from the repository root on the GPU machine.
#
#   bash tests/gpu/device_check.sh            # results under $OUT (or /tmp/cchet-device)
#
# The machine's image has CuPy (cupy-cuda13x), numpy, nvidia-ml-py, pytest and hypothesis but not
# cryptography, cffi, pycparser or pycryptodome: carry them as wheels in .whl/ (see docs/gpu.md).
set -uo pipefail
OUT="${OUT:-/tmp/cchet-device}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
status=0
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import json; from cchet.platform.info import probe; f = probe(); print(f.render()); json.dump(f.to_dict(), open("'"$OUT"'/info.json", "w"), indent=2)' \
  2>&1 | tee "$OUT/info.txt" || status=1
python3 -m pytest -q -rs -p no:cacheprovider tests/gpu tests/gpu_host/test_compile_gates.py \
  tests/gpu_host/test_kernel_emulated.py 2>&1 | tee "$OUT/pytest.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
python3 bench/bench_gpu.py "$OUT/bench_gpu.json" --size-mib 1024 --channel-mib 256 --threads 1,2,4,8,16 \
  2>&1 | tee "$OUT/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit "$status"
