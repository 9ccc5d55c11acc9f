"""Co-resident code on an attested node: another Ray job's plain task attests with the node's own TEE (every
process in the VM can) and asks the data owner's broker for the session's job key under a function name it
made up. Keys are bound to calls the owner made, so the broker refuses it, and says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

THIEF = """
import json, sys
import ray

url, broker_id, key_id, key_dir = sys.argv[1:5]
ray.init(address=sys.argv[5])

@ray.remote(num_cpus=0)
def steal():
    from cchet import KeyReleaseDenied
    from cchet.attest.simulate.attester import SimulatedAttester
    from cchet.broker.client import BrokerClient
    from cchet.broker.transport import HttpTransport

    client = BrokerClient(
        HttpTransport(url),
        broker_id=bytes.fromhex(broker_id),
        attester=SimulatedAttester.for_kind("tdx", key_dir),
        node_id=ray.get_runtime_context().get_node_id(),
    )
    try:
        client.keys([bytes.fromhex(key_id)], function="payroll.export_all")
    except KeyReleaseDenied as e:
        return {"verdict": "denied", "reasons": list(e.reasons)}
    return {"verdict": "released", "reasons": []}

print("THIEF " + json.dumps(ray.get(steal.remote())))
"""


def test_another_jobs_plain_task_gets_no_job_key(tdx_session: Any, tmp_path: Path) -> None:
    import ray

    from cchet.attest.simulate.authority import default_key_dir

    script = tmp_path / "thief.py"
    script.write_text(THIEF)
    args = [
        tdx_session.broker_url,
        tdx_session.broker_id.hex(),
        tdx_session.job_key.key_id.hex(),
        str(default_key_dir()),
        ray.get_runtime_context().gcs_address,
    ]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=180, check=False)
    line = next((x for x in run.stdout.splitlines() if x.startswith("THIEF ")), None)
    assert line is not None, run.stdout[-2000:] + run.stderr[-3000:]
    answer = json.loads(line[len("THIEF ") :])
    assert answer["verdict"] == "denied", answer
    assert any("ticket" in r for r in answer["reasons"]), answer["reasons"]
    audit = [json.loads(x) for x in Path(tdx_session.local_broker.audit.path).read_text().splitlines()]
    refused = [r for r in audit if r["event"] == "refusal" and "payroll.export_all" in r["requester"]]
    assert refused, "the refusal is in the audit log"
