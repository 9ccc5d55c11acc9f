"""What this machine is: CPU TEE kind, NVIDIA GPUs and their confidential-computing state.

Importing this package reads nothing and imports neither pynvml nor CuPy; the probes run when called.
"""

from __future__ import annotations

__all__: list[str] = []
