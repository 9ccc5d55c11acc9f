"""AES-GCM on NVIDIA GPUs, the bounce-buffer channel, and the kernels' numpy reference (no Ray).

Importing this package imports neither CuPy nor a CUDA library and touches no device; the GPU path
raises :class:`~cchet.DeviceUnavailable`, naming the fix, when it is used without CuPy or a GPU.
"""

from __future__ import annotations

__all__: list[str] = []
