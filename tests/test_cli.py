"""The ``cchet`` command: version, help, and sealing files at rest."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import cchet
from cchet.cli import main


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert cchet.__version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("seal", "unseal", "key"):
        assert command in text


def test_seal_and_unseal_files(tmp_path: Path) -> None:
    plain = tmp_path / "data.bin"
    plain.write_bytes(os.urandom(3_000_001))
    key = tmp_path / "k.key"
    assert (
        main(["seal", "-k", str(key), "--create-key", "--context", "x", str(plain), str(tmp_path / "s")]) == 0
    )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    sealed = (tmp_path / "s").read_bytes()
    assert len(sealed) == cchet.sealed_size(3_000_001)
    assert sealed[64:72] == (3_000_001).to_bytes(8, "big"), "a regular file's length goes in the header"
    assert main(["unseal", "-k", str(key), "--context", "x", str(tmp_path / "s"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_failed_unseal_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "data.bin"
    plain.write_bytes(os.urandom(5 << 20))
    key = tmp_path / "k.key"
    main(["key", "new", str(key)])
    main(["seal", "-k", str(key), str(plain), str(tmp_path / "s")])
    blob = bytearray((tmp_path / "s").read_bytes())
    blob[-100] ^= 1
    (tmp_path / "s").write_bytes(blob)
    assert main(["unseal", "-k", str(key), str(tmp_path / "s"), str(tmp_path / "out")]) == 1
    assert "failed authentication" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin", "k.key", "s"]


def test_key_new_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k.key"
    assert main(["key", "new", str(key)]) == 0
    assert main(["key", "new", str(key)]) == 1
    assert "exists" in capsys.readouterr().err


def test_installed_script_pipes_stdin_to_stdout(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("cchet")
    key = tmp_path / "k.key"
    subprocess.run([exe, "key", "new", key], check=True, capture_output=True)
    data = os.urandom(100_000)
    sealed = subprocess.run(
        [exe, "seal", "-k", key, "-", "-"], input=data, check=True, capture_output=True
    ).stdout
    assert sealed[64:72] == b"\xff" * 8, "a pipe's length is unknown"
    out = subprocess.run([exe, "unseal", "-k", key, "-", "-"], input=sealed, check=True, capture_output=True)
    assert out.stdout == data
