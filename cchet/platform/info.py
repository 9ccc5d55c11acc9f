"""``probe()``: what this machine is and which of cchet's protections hold on it, stated plainly.

Used by ``cchet info`` and notebooks (HTML repr). Nothing is assumed: no TEE device means no TEE, no NVML
means no GPU path, CC off means GPU memory is not protected.
"""

from __future__ import annotations

import html
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cchet.errors import DeviceUnavailable
from cchet.platform.nvml import CcState, Nvml
from cchet.platform.tee import TeeInfo, detect_tee

__all__ = ["GpuSummary", "MachineInfo", "probe"]


@dataclass(frozen=True, slots=True)
class GpuSummary:
    """Per GPU: ``cc_on`` and ``ready`` are None when NVML cannot tell (no CC support)."""

    index: int
    name: str
    cc_on: bool | None
    ready: bool | None
    memory_protected: bool


@dataclass(slots=True)
class MachineInfo:
    """The probe's findings; :meth:`statements` says what holds here."""

    machine: str
    tee: TeeInfo
    gpus: list[GpuSummary] = field(default_factory=list)
    nvml_error: str | None = None
    driver: str | None = None
    cc: CcState | None = None
    key_rotation_threshold: int | None = None

    def statements(self) -> list[str]:
        out = []
        if self.tee.detected:
            out.append(
                f"CPU TEE interface present: {self.tee.kind} ({', '.join(self.tee.found)}); that this VM is "
                "the one a policy trusts is shown only by attestation"
            )
        else:
            out.append(
                "no CPU TEE detected: this process's memory (keys, plaintext) is visible to the host OS, "
                "the hypervisor and the machine's operator"
            )
        if self.nvml_error is not None:
            out.append(f"no NVIDIA GPU usable here ({self.nvml_error}); the GPU path is unavailable")
        elif not self.gpus:
            out.append("NVML found no NVIDIA GPU; the GPU path is unavailable")
        for g in self.gpus:
            if g.cc_on and g.memory_protected:
                state = "CC on, GPU memory protected"
                if not g.ready:
                    state += ", not ready (accepts no work until attested and set ready)"
            else:
                state = "CC off: GPU memory is NOT protected (channel staging stays ciphertext, device memory does not)"
            out.append(f"GPU {g.index} {g.name}: {state}")
        if self.cc is not None and self.cc.devtools:
            out.append("CC devtools mode is on: GPU confidentiality is off")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statements"] = self.statements()
        return d

    def render(self) -> str:
        lines = [f"machine: {self.machine}", f"CPU TEE: {self.tee.kind or 'none detected'}"]
        if self.nvml_error is not None:
            lines.append(f"GPUs: none ({self.nvml_error})")
        else:
            lines.append(f"NVIDIA driver: {self.driver}; GPUs: {len(self.gpus)}")
            if self.key_rotation_threshold is not None:
                lines.append(f"CC key-rotation threshold: attacker advantage 2^-{self.key_rotation_threshold}")
        for g in self.gpus:
            lines.append(
                f"  GPU {g.index}: {g.name}; CC {_onoff(g.cc_on)}; ready {_yesno(g.ready)}; "
                f"memory protected {_yesno(g.memory_protected)}"
            )
        lines.append("what holds here:")
        lines += [f"  - {s}" for s in self.statements()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{g.index}</td><td>{html.escape(g.name)}</td><td>{_onoff(g.cc_on)}</td>"
            f"<td>{_yesno(g.ready)}</td><td>{_yesno(g.memory_protected)}</td></tr>"
            for g in self.gpus
        )
        items = "".join(f"<li>{html.escape(s)}</li>" for s in self.statements())
        return (
            f"<div><b>{html.escape(self.machine)}</b>, "
            f"CPU TEE: {html.escape(self.tee.kind or 'none detected')}"
            "<table><tr><th>GPU</th><th>name</th><th>CC</th><th>ready</th><th>memory protected</th></tr>"
            f"{rows}</table><ul>{items}</ul></div>"
        )


def _onoff(v: bool | None) -> str:
    return "unknown" if v is None else "on" if v else "off"


def _yesno(v: bool | None) -> str:
    return "unknown" if v is None else "yes" if v else "no"


def probe(*, nvml_module: Any = None, root: Path = Path("/")) -> MachineInfo:
    """Probe the CPU TEE interfaces and the GPUs (NVML). Never raises for a missing GPU or driver:
    the finding is recorded in ``nvml_error``."""
    info = MachineInfo(machine=f"{platform.system()} {platform.machine()}", tee=detect_tee(root))
    try:
        with Nvml(module=nvml_module) as nvml:
            info.driver = nvml.driver_version()
            info.cc = nvml.cc_state()
            ready = nvml.ready()
            info.key_rotation_threshold = nvml.key_rotation_threshold()
            for g in nvml.gpus():
                info.gpus.append(
                    GpuSummary(
                        index=g.index,
                        name=g.name,
                        cc_on=None if info.cc is None else info.cc.enabled,
                        ready=ready,
                        memory_protected=bool(info.cc and info.cc.enabled and g.memory_protected),
                    )
                )
    except DeviceUnavailable as e:
        info.nvml_error = str(e)
    return info
