"""The notebooks in docs/notebooks/ run top to bottom in a real Jupyter kernel (issue #6).

Each is executed in its own directory, as a user opening it would; any error fails the test.
They must render their plots inline (PNG outputs) and use only the public API (no ``_private``
names)."""

from __future__ import annotations

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
PUBLIC_MODULES = {"agentgraph", "agentgraph.costs", "agentgraph.outputs", "agentgraph.sources", "schedulers",
                  "schedulers.demo", "schedulers.gate", "schedulers.plots", "schedulers.sweep"}


def test_the_two_notebooks_the_issue_names_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == ["evaluate-strategies.ipynb", "what-if.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_only_the_public_api(path: Path) -> None:
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    ours = set(re.findall(r"^\s*(?:from|import) ((?:agentgraph|schedulers)[\w.]*)", code, flags=re.M))
    assert ours and ours <= PUBLIC_MODULES, ours - PUBLIC_MODULES
    assert not re.search(r"\b(?:schedulers|agentgraph|plots)\.(_\w+)", code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_renders_plots_inline(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
