"""The seal benchmark produces a complete result document (no timing is asserted)."""

from __future__ import annotations

import pytest

from cchet.bench import seal, timing


def test_result_document_is_complete() -> None:
    result = seal.run((4096,), threads=2, repeats=5)
    assert result["machine"]["cores_usable"] >= 1 and "git_sha" in result["machine"]
    assert "encrypt_into" in result["baseline"]
    configs = {(r["operation"], r["threads"], r["backend"]) for r in result["rows"]}
    assert configs == {
        ("seal", 1, "openssl"),
        ("seal", 2, "openssl"),
        ("unseal", 1, "openssl"),
        ("unseal", 2, "openssl"),
        ("seal", 1, "pycryptodome"),
        ("unseal", 1, "pycryptodome"),
        ("raw-chunks", 2, "reference"),
    }
    for r in result["rows"]:
        assert r["ratio"] == pytest.approx(r["baseline_seconds"] / r["seconds"])
    assert seal.table(result).count("\n") == len(result["rows"]) + 1


def test_fewer_than_five_samples_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 5"):
        timing.interleaved_medians({"x": lambda: None}, repeats=3)


def test_broker_benchmark_document() -> None:
    from cchet.bench import broker

    result = broker.run(repeats=5, clients=4)
    rows = result["rows"]
    assert {"first_release_in_process_ms", "cached_reuse_ms", "first_release_http_ms"} <= set(rows)
    assert rows["concurrent_4_clients_max_ms"] >= rows["concurrent_4_clients_median_ms"] > 0
    assert "SIMULATED" in result["evidence"]
