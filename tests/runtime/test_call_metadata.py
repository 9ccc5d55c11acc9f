"""What travels in the clear cannot steer a confidential call. Ray's control plane (or anyone who can rewrite a
task specification) sees the call header: ids and the data owner's call ticket, which names the key ids and the
``tee``/``gpu`` requirements. Rewriting any of them fails the call closed: the broker releases nothing against a
ticket that does not verify, and the worker runs nothing. The output key id is not in the clear at all: it is
in the sealed envelope, and the driver opens a result only under its descriptor's key.

``tee=`` and ``gpu=`` are enforced, not only scheduled: a call that lands on a worker whose appraised evidence
does not meet them (the scheduler fooled, here by hand) gets no key."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import cchet
from cchet import KeyReleaseDenied, PlacementError
from cchet.broker.tickets import CallTicket
from cchet.runtime import session as session_module
from cchet.runtime.frames import read_call_header, write_call_header

remote_module = importlib.import_module("cchet.runtime.remote")  # the package re-exports remote(), not the module


@cchet.remote
def mark(marker: str, x: int) -> int:
    Path(marker).write_text("ran")
    return x


def _rewriting(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """Rewrite the ticket in every call header on its way to Ray."""
    invoke = remote_module._invoke

    def tampered(header: bytes, payloads: list[Any], ray_options: dict[str, Any]) -> Any:
        h = read_call_header(header)
        ticket = change(CallTicket.from_bytes(h.ticket)).to_bytes()
        forged = write_call_header(h.session_id, h.call_id, h.function, ticket, envelope=bytes(h.envelope))
        return invoke(forged, payloads, ray_options)

    monkeypatch.setattr(remote_module, "_invoke", tampered)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: replace(t, key_ids=t.key_ids[:1]),
        lambda t: replace(t, tee="any" if t.tee != "any" else "tdx"),
        lambda t: replace(t, gpu="cc"),
        lambda t: replace(t, expires=t.expires + 10**6),
    ],
    ids=["key-ids", "tee", "gpu", "expiry"],
)
def test_a_rewritten_ticket_fails_closed(
    tdx_session: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change: Any
) -> None:
    lenient = cchet.Policy(name="meta-lenient", allow_simulation=True, measurements="any")
    _rewriting(monkeypatch, change)
    marker = tmp_path / "marker"
    # a ticket rewritten to say gpu='cc' makes this GPU-less worker refuse before it asks for any key
    with pytest.raises((KeyReleaseDenied, PlacementError), match=r"does not verify|has no GPU"):
        cchet.get(mark.options(policy=lenient, tee="tdx").remote(str(marker), 1))
    assert not marker.exists(), "the task body ran"


def _fooled_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Place every call on the attested nodes whatever it needs, as a fooled scheduler would."""
    monkeypatch.setattr(
        session_module, "require_placement", lambda tee, gpu: session_module.current().registry.qualifying("any", None)
    )


def test_gpu_cc_is_enforced_at_key_release_not_only_placement(
    tdx_session: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fooled_scheduler(monkeypatch)
    marker = tmp_path / "marker"
    # the worker has no GPU to name: it refuses before asking (the broker refuses a request naming a GPU whose
    # report did not pass: tests/broker/test_release.py, tests/runtime/test_gpu_tasks.py)
    with pytest.raises(PlacementError, match="cannot run a gpu='cc' call: this SIMULATED tdx node has no GPU"):
        cchet.get(mark.options(gpu="cc").remote(str(marker), 1))
    with pytest.raises(KeyReleaseDenied, match="tee='snp'"):
        cchet.get(mark.options(tee="snp").remote(str(marker), 1))
    assert not marker.exists(), "the task body ran on a worker that does not meet its requirements"
