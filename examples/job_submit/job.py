"""A confidential pipeline submitted with ``ray job submit`` (see README.md in this folder for the commands).

The driver runs on the Ray head node. It joins the running cluster (``address="auto"``) and uses the data
owner's standalone ``cchet broker serve``, named by the job's environment:

* ``CCHET_BROKER_URL``  the broker's URL (e.g. ``http://127.0.0.1:8470``);
* ``CCHET_BROKER_ID``   the broker id workers pin (``cchet broker id --state DIR`` prints it);
* ``CCHET_JOB_KEY``     the path, on the head node, of a job key file made by ``cchet broker key add --kind job``.

``--simulate tdx`` (or ``snp``, ``sgx``, ``tdx+gpu``) runs the nodes as SIMULATED TEEs, which protect nothing;
the broker must then trust the same simulator key directory (``--simulation-keys``). Without ``--simulate``
the nodes attest with their real TEE, and a node without one gets no key and no task (``PlacementError``).

Prints ``result: {...}`` (JSON) and exits 0; any failure exits non-zero with the error.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import cchet


@cchet.remote(tee="any")
def standardise(records: np.ndarray) -> np.ndarray:
    """Centre and scale each column (inside an attested TEE; the result stays sealed in Ray)."""
    return (records - records.mean(axis=0)) / records.std(axis=0)


@cchet.remote(tee="any")
def risk(features: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """A logistic model's scores, summarised; its printed line comes back sealed and is replayed by the driver."""
    print(f"risk: scoring {features.shape[0]} records inside the TEE")
    scores = 1 / (1 + np.exp(-(features @ weights)))
    return {"records": int(features.shape[0]), "mean_risk": round(float(scores.mean()), 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--simulate", metavar="KIND", help="SIMULATED TEE kind for the nodes (protects nothing)")
    parser.add_argument("--records", type=int, default=10_000, help="rows of synthetic data (default 10000)")
    args = parser.parse_args()

    session = cchet.init(address="auto", simulate=args.simulate)
    try:
        print(f"broker: {session.broker_url} (standalone); attested nodes: {session.registry.describe()}")
        rng = np.random.default_rng(7)
        records = rng.normal(50, 10, size=(args.records, 8))
        weights = rng.normal(0, 1, size=8)
        summary = cchet.get(risk.remote(standardise.remote(records), weights))
        print("result: " + json.dumps(summary, sort_keys=True), flush=True)
    finally:
        cchet.shutdown()


if __name__ == "__main__":
    main()
