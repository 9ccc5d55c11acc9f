"""examples/notebooks/quickstart.ipynb runs top to bottom in a Jupyter kernel and shows what it says it shows.

The kernel is this interpreter (a kernelspec written to a temporary ``JUPYTER_PATH``), with ``HOME`` and Ray's
temp root pointed at temporary folders; the notebook starts its own local Ray inside the kernel, apart from
the one the other runtime tests share.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.ray]

NOTEBOOK = REPO / "examples" / "notebooks" / "quickstart.ipynb"
KERNEL = "cchet-test-python"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("notebook")
    spec = root / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    (root / "home").mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="cn", dir="/tmp")  # Unix socket paths allow 107 bytes
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "jupyter"))
        mp.setenv("HOME", str(root / "home"))
        mp.setenv("RAY_TMPDIR", ray_tmp)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        for name in ("CCHET_SIM_KEY_DIR", "CCHET_PROGRESS", "RAY_ADDRESS", "CCHET_BROKER_URL"):
            mp.delenv(name, raising=False)
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            nb, kernel_name=KERNEL, timeout=180, startup_timeout=60, resources={"metadata": {"path": str(root)}}
        )
        try:
            client.execute()
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    yield nb


def _outputs(nb: Any, source: str) -> dict[str, str]:
    """The outputs of the one code cell whose source contains ``source``, by kind (stdout, stderr, MIME type)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and source in c.source]
    assert len(cells) == 1, source
    found: dict[str, str] = {}
    for out in cells[0].outputs:
        assert out.output_type != "error", "".join(out.get("traceback", []))
        if out.output_type == "stream":
            found[out.name] = found.get(out.name, "") + out.text
        for mime, value in out.get("data", {}).items():
            found[mime] = found.get(mime, "") + (value if isinstance(value, str) else json.dumps(value))
    return found


def test_the_session_says_it_is_simulated_and_shows_the_registry(executed: Any) -> None:
    out = _outputs(executed, 'cchet.init(simulate="tdx+gpu")')
    assert "SIMULATED tdx+gpu TEE" in out["stderr"]
    assert "<table" in out["text/html"] and "accepted (SIMULATED)" in out["text/html"]


def test_a_confidential_task_shows_a_sealed_ref_and_its_result(executed: Any) -> None:
    assert "produced by" in _outputs(executed, "features = standardise.remote")["text/html"]
    out = _outputs(executed, "cchet.get(summary.remote(features))")
    assert out["stdout"] == "summarising 100000 values inside the TEE\n"
    assert out["text/plain"] == "{'min': -1.732, 'max': 1.732}"


def test_a_refused_placement(executed: Any) -> None:
    out = _outputs(executed, "needs_snp.remote(1)")
    assert "PlacementError: no attested node qualifies for tee='snp'" in out["stdout"]


def test_attestation_results_render(executed: Any) -> None:
    html = _outputs(executed, "entry = session")["text/html"]
    assert "ACCEPTED" in html and "SIMULATED" in html and "tdx" in html
    assert '"cchet.simulated": true' in _outputs(executed, "to_json()")["stdout"]


def test_metrics_progress_and_channel_statistics(executed: Any) -> None:
    assert "cchet_attestations{verdict=accepted,where=driver}" in _outputs(executed, "metrics.totals()")["text/plain"]
    bars = _outputs(executed, "big = np.ones")
    assert "application/vnd.jupyter.widget-view+json" in bars, bars  # tqdm's notebook widget
    assert "cchet.put" in bars["text/plain"] and "cchet.get" in bars["text/plain"]
    assert "SIMULATED GPU" in _outputs(executed, "BounceChannel(simulated_gpu()")["text/html"]


def test_a_confidential_gpu_task(executed: Any) -> None:
    out = _outputs(executed, "def gram(x)")
    assert out["stdout"] == (
        "x arrived as a SimulatedDeviceArray of shape (4096, 64)\nSimulatedDeviceArray (64, 64) True\n"
    )
