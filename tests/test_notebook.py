"""examples/flights_notebook.ipynb runs top to bottom, and what it shows is right."""

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

NOTEBOOK = Path(__file__).parent.parent / "examples" / "flights_notebook.ipynb"


def run_notebook() -> dict:
    """Execute the code cells in order in one namespace, as a kernel would (no Jupyter needed)."""
    namespace: dict = {}
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), str(NOTEBOOK), "exec"), namespace)
    return namespace


def test_notebook_runs_and_its_figures_are_right(capsys):
    ns = run_notebook()
    conn = ns["conn"]
    scored = conn.sql("""SELECT is_late, predicted_is_late_probs[2].prob AS p
                         FROM ML.PREDICT(MODEL delay_model, (SELECT * FROM delays WHERE month > 9))""").df()
    assert ns["evaluation"].roc_auc[0] == np.float64(roc_auc_score(scored.is_late, scored.p))
    assert ns["evaluation"].beats_baseline[0]
    assert set(ns["slices"].origin) == {"EWR", "JFK", "LGA"}
    explained = ns["explained"]
    assert len(explained) == 5 and all(len(a) == 3 for a in explained.top_feature_attributions)
    assert "# Model card: delay_model" in ns["card"]
    assert "Model card" in capsys.readouterr().out
