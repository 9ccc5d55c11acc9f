"""The options of ``@cchet.remote``: one declarative table, validated when the decorator is applied.

cchet's own options decide where a task may run and which keys it may receive; Ray options pass through to
``ray.remote(...).options(...)`` except those cchet must control (placement and return count).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cchet.attest.policy import Policy
from cchet.attest.tees import ALL
from cchet.hazmat.keys import DataKey

__all__ = ["CCHET_OPTIONS", "RAY_OPTIONS", "TaskOptions", "validate_options"]

TEE_CHOICES = (*ALL, "any")
GPU_CHOICES = (None, "cc")


def _tee(value: object) -> str:
    if value not in TEE_CHOICES:
        raise ValueError(f"tee must be one of {', '.join(map(repr, TEE_CHOICES))}, got {value!r}")
    return str(value)


def _gpu(value: object) -> str | None:
    if value not in GPU_CHOICES:
        raise ValueError(f"gpu must be None (no GPU) or 'cc' (a GPU in confidential-computing mode), got {value!r}")
    return None if value is None else str(value)


def _policy(value: object) -> Policy | None:
    if value is not None and not isinstance(value, Policy):
        raise TypeError(f"policy must be a cchet.Policy, got {type(value).__name__}")
    return value


def _flag(name: str) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        return value

    return check


def _keys(value: object) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise TypeError("keys must be a list of DataKey handles or 16-byte key ids")
    out = []
    for k in value:
        if isinstance(k, DataKey):
            out.append(k.key_id)
        elif isinstance(k, bytes) and len(k) == 16:
            out.append(k)
        else:
            raise TypeError(f"keys: {k!r} is neither a DataKey nor a 16-byte key id")
    return tuple(out)


CCHET_OPTIONS: Mapping[str, tuple[Callable[[object], Any], Any, str]] = {
    "tee": (_tee, "any", "CPU TEE kind the task needs: " + ", ".join(map(repr, TEE_CHOICES))),
    "gpu": (_gpu, None, "None, or 'cc' for an attested GPU in confidential-computing mode"),
    "policy": (_policy, None, "a cchet.Policy the worker must also satisfy (default: the session's)"),
    "keys": (_keys, (), "extra keys (DataKey or key id) the task may receive from the broker"),
    "spread": (_flag("spread"), False, "spread calls over the qualifying nodes instead of packing them (Ray's SPREAD)"),
    "device_args": (
        _flag("device_args"),
        True,
        "with gpu='cc': NumPy array arguments arrive as CuPy arrays, opened by the kernel inside the GPU "
        "(False: host NumPy arrays)",
    ),
}

RAY_OPTIONS = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "memory",
        "resources",
        "accelerator_type",
        "max_retries",
        "retry_exceptions",
        "max_calls",
        "name",
        "runtime_env",
        "enable_task_events",
    }
)
ACTOR_RAY_OPTIONS = frozenset(
    {
        "num_cpus",
        "num_gpus",
        "memory",
        "resources",
        "accelerator_type",
        "max_restarts",
        "max_task_retries",
        "max_concurrency",
        "name",
        "namespace",
        "lifetime",
        "runtime_env",
        "enable_task_events",
    }
)
CONTROLLED = {
    "scheduling_strategy": "cchet places tasks on attested nodes itself",
    "label_selector": "cchet places tasks on attested nodes itself",
    "placement_group": "cchet places tasks on attested nodes itself",
    "num_returns": "confidential tasks return one sealed object",
}


@dataclass(frozen=True)
class TaskOptions:
    tee: str = "any"
    gpu: str | None = None
    policy: Policy | None = None
    keys: tuple[bytes, ...] = ()
    spread: bool = False
    device_args: bool = True
    ray: Mapping[str, Any] = field(default_factory=dict)

    def merged(self, ray_options: frozenset[str] | None = None, **changes: Any) -> TaskOptions:
        """A new options object with ``changes`` validated and applied (``.options()``)."""
        current = {
            "tee": self.tee,
            "gpu": self.gpu,
            "policy": self.policy,
            "keys": self.keys,
            "spread": self.spread,
            "device_args": self.device_args,
            **self.ray,
        }
        current.update(changes)
        return validate_options(current, ray_options or RAY_OPTIONS)


def validate_options(options: Mapping[str, Any], ray_options: frozenset[str] | None = None) -> TaskOptions:
    """Check every option now; unknown names raise ``TypeError`` listing the valid ones. ``ray_options`` are
    the Ray options that pass through (task options by default, :data:`ACTOR_RAY_OPTIONS` for actors)."""
    allowed = RAY_OPTIONS if ray_options is None else ray_options
    cchet_values: dict[str, Any] = {}
    ray_values: dict[str, Any] = {}
    for name, value in options.items():
        if name in CCHET_OPTIONS:
            cchet_values[name] = CCHET_OPTIONS[name][0](value)
        elif name in allowed:
            ray_values[name] = value
        elif name in CONTROLLED:
            raise TypeError(f"option {name!r} cannot be set on a confidential task: {CONTROLLED[name]}")
        else:
            valid = sorted(CCHET_OPTIONS) + sorted(allowed)
            raise TypeError(f"unknown option {name!r}; valid options: {', '.join(valid)}")
    if ray_values.get("num_gpus") and cchet_values.get("gpu") is None:
        raise ValueError("num_gpus > 0 on a confidential task needs gpu='cc' (an attested GPU in CC mode)")
    if cchet_values.get("device_args") is False and cchet_values.get("gpu") is None:
        raise ValueError("device_args=False only applies to gpu='cc' tasks, whose array arguments go to the GPU")
    if cchet_values.get("gpu") == "cc" and not ray_values.get("num_gpus"):
        ray_values["num_gpus"] = 1  # Ray must hand the task a GPU of its own (CUDA_VISIBLE_DEVICES)
    return TaskOptions(ray=ray_values, **cchet_values)
