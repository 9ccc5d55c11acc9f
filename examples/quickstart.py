"""cchet quickstart: a confidential Ray pipeline, a refused placement, the audit trail, a throughput figure.

    make demo            # or: python examples/quickstart.py

Runs on any machine: the nodes are a SIMULATED Intel TDX guest and a SIMULATED AMD SEV-SNP guest (simulated
TEEs protect nothing; on real TDX, SEV-SNP or SGX machines the same code runs on real attestation). It shows:

1. ``cchet.init(simulate=["tdx", "snp"])`` starts a local two-node Ray cluster, the key broker inside this
   process, and attests both nodes; the default policy pins the simulator's measurements for each kind.
2. Two ``@cchet.remote`` tasks chained, one placed on the TDX node and one on the SNP node: arguments,
   results, printed output and errors cross Ray sealed; the intermediate result is never opened by the driver.
3. A task that asks for an Intel SGX enclave is refused at once with ``PlacementError``.
4. The broker's audit log: every challenge, appraisal and release, MAC-chained, verified.
5. Sealing throughput on all cores.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

import cchet
from cchet.broker.audit import verify_audit_log


@cchet.remote(tee="tdx")
def preprocess(records: np.ndarray) -> np.ndarray:
    """Standardise each column (runs inside the attested TEE)."""
    return (records - records.mean(axis=0)) / records.std(axis=0)


@cchet.remote(tee="snp")
def score(features: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """A linear model's risk scores, summarised."""
    print(f"score: {features.shape[0]} records, inside the TEE")
    scores = 1 / (1 + np.exp(-(features @ weights)))
    return {"mean_risk": float(scores.mean()), "high_risk": int((scores > 0.9).sum())}


@cchet.remote(tee="sgx")
def needs_sgx(x: int) -> int:
    return x


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cchet-demo-") as tmp:
        audit = Path(tmp) / "audit.jsonl"
        start = time.perf_counter()
        session = cchet.init(simulate=["tdx", "snp"], audit_log=audit, broker_state=Path(tmp) / "broker")
        print(
            f"\n1. cchet {cchet.__version__} up in {time.perf_counter() - start:.1f} s; attested nodes: "
            f"{session.registry.describe()}"
        )

        rng = np.random.default_rng(7)
        records = rng.normal(50, 10, size=(200_000, 8))
        weights = rng.normal(0, 1, size=8)
        features = preprocess.remote(records)  # a SealedRef: sealed in the object store
        summary = cchet.get(score.remote(features, weights))
        print(
            f"2. confidential pipeline -> {summary}; the features never left the TEEs in the clear "
            f"({features!r})"
        )

        try:
            needs_sgx.remote(1)
        except cchet.PlacementError as e:
            print(f"3. refused placement: {e}")

        report = verify_audit_log(audit, session.broker.audit_mac_key)
        records_ = [json.loads(line) for line in audit.read_text().splitlines()]
        print(f"4. audit trail: {report.records} MAC-chained records, intact: {report.ok}")
        for r in records_:
            who = r["requester"].split(" ", 1)[-1]
            print(f"   #{r['seq']} {r['event']:<9} {r['verdict'] or '':<8} {who}")

        key = cchet.DataKey.generate()
        data = np.frombuffer(rng.bytes(256 << 20), dtype=np.uint8)
        out = np.empty(cchet.sealed_size(data.nbytes), dtype=np.uint8)
        cchet.seal_into(key, data, out)
        start = time.perf_counter()
        cchet.seal_into(key, data, out)
        seconds = time.perf_counter() - start
        rate = data.nbytes / seconds / 1e9
        print(f"5. sealed 256 MiB in {seconds * 1e3:.0f} ms: {rate:.2f} GB/s (AES-256-GCM, all cores)")
        cchet.shutdown()


if __name__ == "__main__":
    main()
