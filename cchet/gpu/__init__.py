"""AES-GCM on NVIDIA GPUs, the bounce-buffer channel, and the kernels' numpy reference (no Ray).

Importing this package imports neither CuPy nor a CUDA library and touches no device; the GPU path
raises :class:`~cchet.DeviceUnavailable`, naming the fix, when it is used without CuPy or a GPU. There is
no CPU fallback: the SIMULATED :class:`FakeDevice` runs only when passed explicitly, and says so.

Public names (loaded on first use):

* :class:`BounceChannel` -- sealed host<->device transfers through pinned staging slots;
* :func:`seal`, :func:`unseal` -- whole sealed streams in device memory, opened and sealed by the kernels;
* :func:`precompile` -- compile the kernels for the visible GPUs ahead of time;
* :class:`FakeDevice` -- the SIMULATED device for tests; :class:`TransferStats` -- a transfer's timings.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BounceChannel", "FakeDevice", "TransferStats", "precompile", "seal", "unseal"]

_WHERE = {
    "BounceChannel": "cchet.gpu.channel",
    "FakeDevice": "cchet.gpu.fake_device",
    "TransferStats": "cchet.gpu.stats",
    "precompile": "cchet.gpu.loader",
    "seal": "cchet.gpu.ondevice",
    "unseal": "cchet.gpu.ondevice",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'cchet.gpu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
