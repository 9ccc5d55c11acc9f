"""The composite attester tells the broker client its TEE kind and GPU count before collecting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cchet import DeviceUnavailable
from cchet.attest.attesters.composite import CompositeAttester
from cchet.attest.attesters.configfs_tsm import TsmAttester


class FakeTsm(TsmAttester):
    """configfs-tsm as a plain folder: entries are directories, attributes files the fake kernel fills."""

    def __init__(self, root: Path, provider: str) -> None:
        super().__init__(root, ccel=None)
        self.provider = provider

    def make_entry(self) -> Path:
        entry = super().make_entry()
        (entry / "provider").write_text(self.provider + "\n")
        return entry

    def remove_entry(self, entry: Path) -> None:
        for child in entry.iterdir():
            child.unlink()
        entry.rmdir()


@pytest.mark.parametrize(("provider", "kind"), [("tdx_guest", "tdx"), ("sev_guest", "snp")])
def test_probe_names_the_kind_and_leaves_no_entry(tmp_path: Path, provider: str, kind: str) -> None:
    attester = CompositeAttester(FakeTsm(tmp_path, provider))
    assert attester.tee_kind == kind and attester.gpu_count == 0
    assert list(tmp_path.iterdir()) == []


def test_probe_refuses_other_providers_and_missing_configfs(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="not TDX or SEV-SNP"):
        CompositeAttester(FakeTsm(tmp_path, "arm_cca_guest")).tee_kind  # noqa: B018
    with pytest.raises(DeviceUnavailable, match="configfs-tsm"):
        TsmAttester(tmp_path / "absent").probe()
