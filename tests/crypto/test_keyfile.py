"""Key files: created exclusively with mode 0600, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import cchet
from cchet.crypto.keyfile import read_key_file, write_key_file


def test_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = cchet.DataKey.generate()
    path = write_key_file(tmp_path / "k.key", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == key


def test_never_overwrites(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k.key", cchet.DataKey.generate())
    with pytest.raises(FileExistsError):
        write_key_file(path, cchet.DataKey.generate())


def test_refuses_a_readable_key_file(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k.key", cchet.DataKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        read_key_file(path)


@pytest.mark.parametrize("text", ["", "{}", '{"cchet_data_key": 1, "key_id": "zz", "key": "AA=="}', "[1]"])
def test_malformed_key_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ValueError, match="cchet key new"):
        read_key_file(path)
