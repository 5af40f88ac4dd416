"""The durability-study notebook executes end to end (so it cannot rot) and is committed clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "durability-study.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.heavy
def test_notebook_runs(tmp_path, monkeypatch):
    """Execute every cell in a fresh kernel, results redirected to a temporary results/ directory."""
    monkeypatch.setenv("KAFKASIM_RESULTS", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type in ("execute_result", "display_data") and "image/png" in o.data]
    assert len(images) >= 5  # loss map, timeline, latency, failover distribution, the counterexample's timeline
    study = tmp_path / "sweeps" / "durability-study"
    table = pd.read_parquet(study / "sweep.parquet")
    assert len(table) == 18 and (table["status"] == "ok").all()
    assert sorted(table["seed"].unique()) == [1, 2, 3]  # fixed seeds
    assert (study / "report.html").is_file()
    assert {p.name for p in (study / "plots").glob("*.png")} >= {"loss-map.png", "latency.png",
                                                                 "failover-distribution.png"}
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "acks=  0, RF=2, min.insync=1: message loss" in text
    # section 4: explore finds and shrinks the acks=1 loss, and finds none in the protected configuration
    explored = tmp_path / "explore" / "acks1"
    assert (explored / "counterexample.yaml").is_file() and (explored / "timeline.png").is_file()
    assert "first counterexample: schedule" in text and "acknowledged records missing" in text
    assert "no violation of no-acked-loss found in 8 schedules" in text


def test_notebook_writes_under_results_by_default():
    """Without the test's redirect the notebook writes to <checkout>/results/ (never the notebooks folder)."""
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert 'os.environ.get("KAFKASIM_RESULTS", ROOT / "results")' in source
    assert "seeds" in source and "sim.sweep(" in source
