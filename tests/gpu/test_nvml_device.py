"""NVML on the real GPU machine: what cchet info reports, and CC evidence when CC mode is on."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cchet.platform.info import probe
from cchet.platform.nvml import Nvml


def test_probe_finds_the_gpu(cp: Any) -> None:
    found = probe()
    print(found.render())
    assert found.nvml_error is None
    assert len(found.gpus) == int(cp.cuda.runtime.getDeviceCount())


def test_cc_evidence_when_cc_is_on() -> None:
    with Nvml() as nvml:
        state = nvml.cc_state()
        if state is None or not state.enabled:
            pytest.skip(f"GPU CC mode is off here ({state}): no attestation report to fetch")
        nonce = os.urandom(32)
        report = nvml.attestation_report(0, nonce)
        assert report.report[4:36] == nonce
        assert nvml.certificate_chain(0).attestation
