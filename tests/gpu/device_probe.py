"""The Python steps of tests/gpu/device_check.sh, one subcommand each, every one writing a JSON file.

    python tests/gpu/device_probe.py imports OUT.json         # cryptography, pycryptodome, cchet importable?
    python tests/gpu/device_probe.py versions OUT.json        # driver, CUDA, CuPy, GPU, CC state, kernel resources
    python tests/gpu/device_probe.py junit PYTEST.xml OUT.json  # a pytest run's counts, failures, skip reasons
    python tests/gpu/device_probe.py sanitizer-case OUT.json  # small seal/open cases for compute-sanitizer
    python tests/gpu/device_probe.py task OUT.json            # confidential vs plain Ray GPU task, if possible
    python tests/gpu/device_probe.py summary CHECK.json       # print the device check's closing summary

Exit status: 0 done, 1 failed, 3 cannot run here (the line ``stage skipped: <reason>`` says why). Nothing
here needs a GPU to import; ``versions`` records what it cannot find instead of failing, so it runs (and
is tested) on machines without a GPU, CuPy or nvcc.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN = 0, 1, 3
REPO = Path(__file__).resolve().parents[2]
KERNEL_SOURCE = REPO / "kernels" / "aes_gcm.cu"
SMI_FIELDS = (
    "name,driver_version,memory.total,compute_cap,pstate,clocks.sm,clocks.max.sm,clocks.mem,"
    "power.limit,temperature.gpu,persistence_mode"
)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def attempt(fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``{"error": ...}`` when it raises: a probe records what it cannot find."""
    try:
        return fn()
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}


def command(argv: list[str], timeout: float = 60) -> dict[str, Any]:
    """Run a program; its exit status and output (or why it could not run)."""
    exe = shutil.which(argv[0])
    if exe is None:
        return {"error": f"{argv[0]} not found on PATH"}
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"{argv[0]} did not finish within {timeout} s"}
    except OSError as e:
        return {"error": f"{argv[0]} could not run: {e}"}
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-2000:]}


def gpu_missing() -> str | None:
    """Why no CUDA GPU can be used from here, or None."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed"
    try:
        cp = importlib.import_module("cupy")
        count = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:
        return f"no usable CUDA GPU: {type(e).__name__}: {e}"
    return None if count else "no CUDA GPU visible"


# ------------------------------------------------------------------------------------------------ imports


def imports(out: Path) -> int:
    """The carried wheels and cchet itself: stages that need them are skipped unless this succeeds."""
    found: dict[str, Any] = {"python": sys.version.split()[0], "sys_path_head": sys.path[:4]}
    needed = {"cryptography": "cryptography", "pycryptodome": "Crypto", "cchet": "cchet"}
    optional = {"cffi": "cffi", "numpy": "numpy", "cupy": "cupy", "pynvml": "pynvml", "hypothesis": "hypothesis"}
    missing = []
    for label, name in {**needed, **optional}.items():
        try:
            mod = importlib.import_module(name)
            found[label] = {"version": str(getattr(mod, "__version__", "?")), "file": str(getattr(mod, "__file__", ""))}
        except Exception as e:
            found[label] = {"error": f"{type(e).__name__}: {e}"}
            if label in needed:
                missing.append(f"{label} ({type(e).__name__}: {e})")
    if not missing:
        try:
            importlib.import_module("cchet.gpu.ondevice")
            importlib.import_module("cchet.gpu.channel")
        except Exception as e:
            missing.append(f"cchet.gpu ({type(e).__name__}: {e})")
    found["ok"] = not missing
    found["headline"] = (
        f"cryptography {found['cryptography'].get('version')}, pycryptodome {found['pycryptodome'].get('version')}, "
        "cchet importable"
        if not missing
        else "not importable: " + "; ".join(missing)
    )
    write_json(out, found)
    print(found["headline"])
    return EXIT_OK if not missing else EXIT_FAILED


# ----------------------------------------------------------------------------------------------- versions


def parse_smi_csv(text: str) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=... --format=csv`` as dicts keyed by the header."""
    rows = list(csv.reader(io.StringIO(text.strip())))
    if len(rows) < 2:
        return []
    header = [h.strip() for h in rows[0]]
    return [dict(zip(header, (v.strip() for v in r), strict=False)) for r in rows[1:] if r]


_ENTRY = re.compile(r"(?:Compiling entry function|Function properties for) '?(\w+)'?")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas(text: str) -> dict[str, dict[str, int]]:
    """Registers, shared memory, stack and spills per entry point from ``ptxas -v`` output."""
    out: dict[str, dict[str, int]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = m.group(1)
            out.setdefault(current, {})
            continue
        if current is None:
            continue
        if m := _FRAME.search(line):
            out[current] |= dict(
                zip(("stack_bytes", "spill_store_bytes", "spill_load_bytes"), map(int, m.groups()), strict=True)
            )
        if m := _USED.search(line):
            out[current]["registers"] = int(m.group(1))
            s = _SMEM.search(line)
            out[current]["smem_bytes"] = int(s.group(1)) if s else 0
    return out


def nvcc_resources(arch: str, *defines: str) -> dict[str, Any]:
    """``nvcc --resource-usage`` of kernels/aes_gcm.cu for ``arch`` (e.g. ``sm_90``): per entry point."""
    nvcc = shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if os.access(p, os.X_OK)), None)
    if nvcc is None:
        return {"error": "nvcc not found on PATH or in /usr/local/cuda/bin"}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            nvcc,
            f"-arch={arch}",
            "-std=c++17",
            "--resource-usage",
            "-cubin",
            *(f"-D{d}" for d in defines),
            "-o",
            str(Path(tmp) / "k.cubin"),
            str(KERNEL_SOURCE),
        ]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        except subprocess.TimeoutExpired:
            return {"error": "nvcc did not finish within 180 s"}
    if p.returncode:
        return {"error": f"nvcc exit {p.returncode}", "output": (p.stdout + p.stderr)[-3000:]}
    return {"arch": arch, "defines": list(defines), "nvcc": nvcc, "entries": parse_ptxas(p.stdout + p.stderr)}


def _cupy_info() -> dict[str, Any]:
    cp = importlib.import_module("cupy")
    info: dict[str, Any] = {"version": cp.__version__}
    info["runtime_version"] = attempt(lambda: int(cp.cuda.runtime.runtimeGetVersion()))
    info["driver_version"] = attempt(lambda: int(cp.cuda.runtime.driverGetVersion()))
    info["nvrtc_version"] = attempt(lambda: list(cp.cuda.nvrtc.getVersion()))
    info["device_count"] = attempt(lambda: int(cp.cuda.runtime.getDeviceCount()))
    keys = (
        "name",
        "major",
        "minor",
        "totalGlobalMem",
        "multiProcessorCount",
        "clockRate",
        "memoryClockRate",
        "sharedMemPerBlockOptin",
        "sharedMemPerMultiprocessor",
        "l2CacheSize",
        "regsPerMultiprocessor",
    )

    def props() -> dict[str, Any]:
        p = cp.cuda.runtime.getDeviceProperties(0)
        return {k: (p[k].decode() if isinstance(p.get(k), bytes) else p.get(k)) for k in keys if k in p}

    info["device0"] = attempt(props)
    info["mem_free_total"] = attempt(lambda: list(cp.cuda.runtime.memGetInfo()))
    return info


def _kernel_attributes() -> dict[str, Any]:
    """Per entry point, what the driver reports for the module cchet's loader compiled (NVRTC)."""
    cp = importlib.import_module("cupy")
    try:
        from cchet.gpu import loader

        mod, names, how = loader.module(0), loader.KERNEL_NAMES, "cchet.gpu.loader.module(0)"
    except Exception as e:  # cchet not importable (no wheels): compile the file the same way
        code = KERNEL_SOURCE.read_text()
        mod = cp.RawModule(code=code, options=("--std=c++17", f"-I{KERNEL_SOURCE.parent}"), backend="nvrtc")
        names = tuple(re.findall(r"^\s*(cchet_\w+)\s*\(", code, re.MULTILINE))
        how = f"cupy.RawModule over kernels/aes_gcm.cu (cchet not importable: {e})"
    attrs = (
        "num_regs",
        "shared_size_bytes",
        "local_size_bytes",
        "const_size_bytes",
        "max_threads_per_block",
        "ptx_version",
        "binary_version",
    )
    out: dict[str, Any] = {"how": how, "entries": {}}
    for name in names:
        fn = mod.get_function(name)
        entry: dict[str, Any] = {}
        for a in attrs:
            entry[a] = attempt(lambda a=a, fn=fn: _value(getattr(fn, a)))
        if hasattr(fn, "attributes"):  # CuPy's RawKernel: every driver attribute at once
            entry["attributes"] = attempt(lambda fn=fn: dict(fn.attributes))
        entry["blocks_per_sm_at_256_threads"] = attempt(
            lambda fn=fn: int(
                cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(getattr(fn, "kernel", fn).ptr, 256, 0)
            )
        )
        out["entries"][name] = entry
    return out


def _value(v: Any) -> Any:
    return v() if callable(v) else v


def _nvml_info() -> dict[str, Any]:
    import pynvml as n

    n.nvmlInit()
    try:
        info: dict[str, Any] = {"driver": attempt(lambda: _s(n.nvmlSystemGetDriverVersion()))}
        info["cuda_driver_version"] = attempt(lambda: int(n.nvmlSystemGetCudaDriverVersion()))

        def cc() -> dict[str, int]:
            s = n.nvmlSystemGetConfComputeState()
            return {
                "ccFeature": int(s.ccFeature),
                "environment": int(s.environment),
                "devToolsMode": int(s.devToolsMode),
            }

        info["cc_state"] = attempt(cc)
        info["cc_gpus_ready"] = attempt(lambda: int(n.nvmlSystemGetConfComputeGpusReadyState()))
        gpus = []
        for i in range(int(n.nvmlDeviceGetCount())):
            h = n.nvmlDeviceGetHandleByIndex(i)
            gpus.append(
                {
                    "name": attempt(lambda h=h: _s(n.nvmlDeviceGetName(h))),
                    "memory_total": attempt(lambda h=h: int(n.nvmlDeviceGetMemoryInfo(h).total)),
                    "sm_clock_mhz": attempt(lambda h=h: int(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM))),
                    "sm_clock_max_mhz": attempt(lambda h=h: int(n.nvmlDeviceGetMaxClockInfo(h, n.NVML_CLOCK_SM))),
                    "cc_protected_memory": attempt(
                        lambda h=h: int(n.nvmlDeviceGetConfComputeMemSizeInfo(h).protectedMemSizeKib) * 1024
                    ),
                }
            )
        info["gpus"] = gpus
        return info
    finally:
        n.nvmlShutdown()


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _cchet_platform() -> dict[str, Any]:
    from cchet.platform.info import probe

    found = probe()
    print(found.render())
    return {"probe": found.to_dict(), "statements": found.statements()}


def versions(out: Path) -> int:
    """What this machine is: never fails for something missing, records it instead."""
    info: dict[str, Any] = {
        "python": sys.version,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "repo_commit": command(["git", "-C", str(REPO), "rev-parse", "HEAD"], 10).get("stdout", "").strip(),
    }
    smi = command(["nvidia-smi"], 60)
    print(smi.get("stdout") or smi.get("error"))
    query = command(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv"], 60)
    info["nvidia_smi"] = parse_smi_csv(query["stdout"]) if query.get("rc") == 0 else query
    cc = command(["nvidia-smi", "conf-compute", "-f"], 30)
    info["nvidia_smi_conf_compute"] = (cc.get("stdout") or "").strip()[:500] if cc.get("rc") == 0 else cc
    info["nvml"] = attempt(_nvml_info)
    info["cupy"] = attempt(_cupy_info) if importlib.util.find_spec("cupy") else {"error": "CuPy is not installed"}
    info["cchet_platform"] = attempt(_cchet_platform)
    dev = info["cupy"].get("device0", {}) if isinstance(info["cupy"], dict) else {}
    smi_rows = info["nvidia_smi"] if isinstance(info["nvidia_smi"], list) else []
    if isinstance(dev, dict) and "major" in dev:
        arch = f"sm_{dev['major']}{dev['minor']}"
    elif smi_rows and smi_rows[0].get("compute_cap"):
        arch = "sm_" + smi_rows[0]["compute_cap"].replace(".", "")
    else:
        arch = "sm_90"
    info["kernels_nvcc"] = nvcc_resources(arch)
    missing = gpu_missing()
    info["kernels_cupy"] = {"error": missing} if missing else attempt(_kernel_attributes)
    info["headline"] = versions_headline(info)
    write_json(out, info)
    print(info["headline"])
    return EXIT_OK


def versions_headline(info: dict[str, Any]) -> str:
    parts = []
    rows = info.get("nvidia_smi")
    if isinstance(rows, list) and rows:
        parts.append(f"{rows[0].get('name', '?')}, driver {rows[0].get('driver_version', '?')}")
    else:
        parts.append("no nvidia-smi")
    cupy = info.get("cupy", {})
    if "version" in cupy:
        parts.append(f"CuPy {cupy['version']}, CUDA runtime {cupy.get('runtime_version')}")
    else:
        parts.append("no CuPy")
    state = info.get("nvml", {}).get("cc_state") if isinstance(info.get("nvml"), dict) else None
    if isinstance(state, dict) and "ccFeature" in state:
        parts.append(f"CC {'on' if state['ccFeature'] == 1 else 'off'}")
    entries = info.get("kernels_nvcc", {}).get("entries", {})
    seg = entries.get("cchet_gcm_seal_segments")
    if seg:
        parts.append(
            f"seal_segments {seg.get('registers')} regs, {seg.get('smem_bytes')} B smem, "
            f"{seg.get('spill_store_bytes')} B spill ({info['kernels_nvcc'].get('arch')})"
        )
    return "; ".join(parts)


# -------------------------------------------------------------------------------------------------- junit


def junit(xml_path: Path, out: Path) -> int:
    """Counts, failures (with messages), skip reasons and the slowest tests of a pytest JUnit XML file."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as e:
        write_json(out, {"error": f"no readable JUnit XML at {xml_path}: {e}"})
        print(f"no readable JUnit XML: {e}")
        return EXIT_FAILED
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    seconds = sum(float(s.get("time", 0) or 0) for s in suites)
    failed, skipped, durations = [], {}, []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        durations.append((float(case.get("time", 0) or 0), name))
        for tag in ("failure", "error"):
            for el in case.findall(tag):
                failed.append(
                    {
                        "test": name,
                        "kind": tag,
                        "message": (el.get("message") or "")[:500],
                        "detail": (el.text or "")[-1500:],
                    }
                )
        for el in case.findall("skipped"):
            reason = (el.get("message") or "").strip()[:300]
            skipped[reason] = skipped.get(reason, 0) + 1
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    summary = {
        **counts,
        "passed": passed,
        "seconds": seconds,
        "failed": failed[:30],
        "skip_reasons": dict(sorted(skipped.items(), key=lambda kv: -kv[1])[:20]),
        "slowest": [{"test": n, "seconds": t} for t, n in sorted(durations, reverse=True)[:10]],
        "headline": f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
        f"{counts['skipped']} skipped in {seconds:.1f} s",
    }
    write_json(out, summary)
    print(summary["headline"])
    if counts["tests"] == 0:
        print("no tests ran")
        return EXIT_FAILED
    if counts["skipped"] == counts["tests"]:
        first = next(iter(summary["skip_reasons"]), "")
        print(f"stage skipped: all {counts['tests']} tests skipped: {first}")
        return EXIT_CANNOT_RUN
    return EXIT_OK


# ---------------------------------------------------------------------------------------- sanitizer case


def sanitizer_case(out: Path) -> int:
    """Small seal/open cases (kernels, whole streams, the channel) with CuPy's memory pools off, so that
    compute-sanitizer sees every buffer at its exact size."""
    missing = gpu_missing()
    if missing:
        write_json(out, {"skipped": missing})
        print(f"stage skipped: {missing}")
        return EXIT_CANNOT_RUN
    import numpy as np

    cp = importlib.import_module("cupy")
    cp.cuda.set_allocator(None)
    cp.cuda.set_pinned_memory_allocator(None)
    from cchet import seal, unseal
    from cchet.errors import IntegrityError
    from cchet.gpu import ondevice
    from cchet.gpu.channel import BounceChannel
    from cchet.hazmat.keys import DataKey

    key = DataKey.generate()
    cases: list[dict[str, Any]] = []
    for n, cs in ((0, 4096), (100, 4096), (3 * 4096 + 33, 4096), (2 * 8192 - 9, 8192), (64 << 10, 1 << 16)):
        data = os.urandom(n)
        x = cp.asarray(np.frombuffer(data, dtype=np.uint8)) if n else cp.empty(0, dtype=cp.uint8)
        sealed = ondevice.seal(key, x, context=b"sanitizer", chunk_size=cs)
        cpu_ok = unseal(key, sealed.get(), context=b"sanitizer") == data
        gpu_ok = ondevice.unseal(key, sealed, context=b"sanitizer").get().tobytes() == data
        bad = sealed.copy()
        last = bad[-1:]  # a view: the final tag's last byte
        last ^= 1
        try:
            ondevice.unseal(key, bad, context=b"sanitizer")
            caught = False
        except IntegrityError:
            caught = True
        cases.append(
            {"bytes": n, "chunk_size": cs, "cpu_opens_gpu_seal": cpu_ok, "gpu_open": gpu_ok, "tamper_caught": caught}
        )
    data = np.frombuffer(os.urandom(5 * 4096 + 7), dtype=np.uint8)
    with BounceChannel(0, slots=2, slot_chunks=2, chunk_size=4096, streams=1, threads=1) as ch:
        d = ch.to_device(data)
        round_trip = bool(np.array_equal(ch.to_host(d), data))
        blob = seal(key, data, context=b"ch", chunk_size=4096)
        pre = ch.to_device(blob, key=key, context=b"ch")
        presealed = pre.get().tobytes() == data.tobytes()
        back = unseal(key, ch.to_host_sealed(pre, key, context=b"back"), context=b"back") == data.tobytes()
    cp.cuda.runtime.deviceSynchronize()
    channel = {"round_trip": round_trip, "presealed": presealed, "to_host_sealed": back}
    ok = all(all(v for k, v in c.items() if isinstance(v, bool)) for c in cases) and all(channel.values())
    write_json(out, {"cases": cases, "channel": channel, "ok": ok})
    print(
        "sanitizer case:",
        "all results correct" if ok else "WRONG RESULTS",
        json.dumps({"cases": cases, "channel": channel}),
    )
    return EXIT_OK if ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------------------- task


def task(out: Path) -> int:
    """A confidential GPU task round trip against the same plain Ray GPU task, when Ray and the benchmark
    (``cchet.bench.gpu_tasks.bench_task_round_trip``) are both here."""
    info: dict[str, Any] = {}
    try:
        ray = importlib.import_module("ray")
        info["ray"] = str(getattr(ray, "__version__", "?"))
    except Exception as e:
        info["ray"] = {"error": f"{type(e).__name__}: {e}"}
    try:
        spec = importlib.util.find_spec("cchet.bench.gpu_tasks")
    except Exception as e:
        spec = None
        info["gpu_tasks_error"] = f"{type(e).__name__}: {e}"
    info["gpu_tasks_module"] = spec is not None
    reasons = []
    if isinstance(info["ray"], dict):
        reasons.append(f"import ray failed ({info['ray']['error']})")
    if spec is None:
        reasons.append("cchet.bench.gpu_tasks is absent")
    else:
        fn = getattr(importlib.import_module("cchet.bench.gpu_tasks"), "bench_task_round_trip", None)
        if fn is None:
            reasons.append("cchet.bench.gpu_tasks has no bench_task_round_trip")
    if reasons:
        info["skipped"] = "; ".join(reasons)
        write_json(out, info)
        print(f"stage skipped: {info['skipped']}")
        return EXIT_CANNOT_RUN
    started = time.monotonic()
    returned = fn(out)
    if not out.exists():
        write_json(out, info | {"returned": returned, "seconds": time.monotonic() - started})
    print(f"bench_task_round_trip wrote {out} in {time.monotonic() - started:.1f} s")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------- summary


def summary(check: Path) -> int:
    """Print one line per stage of a device_check.json: status, seconds, and its headline or reason."""
    doc = json.loads(check.read_text())
    for st in doc.get("stages", []):
        data = st.get("data") if isinstance(st.get("data"), dict) else {}
        text = (st.get("status") == "ok" and data.get("headline")) or st.get("reason") or data.get("headline") or ""
        print(f"  {st.get('name', '?'):15s} {st.get('status', '?'):8s} {st.get('seconds', 0):7.1f}s  {text}"[:400])
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands: dict[str, tuple[int, Callable[..., int]]] = {
        "imports": (1, imports),
        "versions": (1, versions),
        "junit": (2, junit),
        "sanitizer-case": (1, sanitizer_case),
        "task": (1, task),
        "summary": (1, summary),
    }
    if not args or args[0] not in commands or len(args) - 1 != commands[args[0]][0]:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[args[0]][1](*map(Path, args[1:]))


if __name__ == "__main__":
    sys.exit(main())
