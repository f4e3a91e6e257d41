"""examples/flights_notebook.ipynb runs top to bottom in a real Jupyter kernel (nbclient), and what it
shows is right."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import sqlml

NOTEBOOK = Path(__file__).parent.parent / "examples" / "flights_notebook.ipynb"
KERNEL = "sqlml-test"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run by a kernel of this interpreter (a kernelspec installed in a temporary folder)."""
    from ipykernel.kernelspec import install
    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel inherits this environment: the key, the sqlml under test (PYTHONPATH may be relative), no bars
    source = str(Path(sqlml.__file__).resolve().parent.parent)
    kept = {name: os.environ.get(name) for name in ("CI", "PYTHONPATH", "JUPYTER_PATH")}
    os.environ.update(CI="true", PYTHONPATH=os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
                      JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    try:
        NotebookClient(notebook, kernel_name=KERNEL, timeout=900,
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return notebook


def outputs(notebook, marker: str) -> list[dict]:
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and marker in c.source]
    return cell.outputs


def shown(notebook, marker: str, kind: str) -> str:
    found = [o["data"][kind] for o in outputs(notebook, marker) if "data" in o and kind in o["data"]]
    assert found, f"no {kind} output for {marker!r}"
    return found[0]


def test_runs_without_errors(executed):
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "error"]
    assert errors == []


def test_cells_show_what_the_same_sql_gives(executed):
    with sqlml.connect(progress=lambda m: None) as conn:
        sqlml.datasets.load(conn.duckdb, "flights")
        conn.sql("""CREATE TABLE delays AS SELECT month, sched_dep_time, dep_delay, distance, carrier, origin, dest,
                    arr_delay > 15 AS is_late FROM flights WHERE arr_delay IS NOT NULL AND day <= 7""")
        overview = conn.sql("SELECT count(*) AS flights, avg(is_late::INT) AS late_share FROM delays").df()
        conn.sql("""CREATE OR REPLACE MODEL delay_model OPTIONS (model_type = 'boosted_tree_classifier',
                    input_label_cols = ['is_late'], random_seed = 7) AS SELECT * EXCLUDE (month) FROM delays WHERE month <= 9""")
        evaluation = conn.sql("""SELECT roc_auc, baseline_roc_auc, lift_roc_auc, accuracy, baseline_accuracy, beats_baseline
                                 FROM ML.EVALUATE(MODEL delay_model, (SELECT * FROM delays WHERE month >= 10))""").df()
    assert shown(executed, "--out overview", "text/html") == overview._repr_html_()  # not wrapped to a width
    assert shown(executed, "--out evaluation", "text/html") == evaluation._repr_html_()
    assert evaluation.beats_baseline[0]


def test_pictures_model_object_and_card_are_shown(executed):
    for marker in ("sqlml.plot.roc(", "sqlml.plot.slices(", "--plot feature_importance"):
        assert shown(executed, marker, "image/png")
    model = shown(executed, 'conn.model("delay_model")', "text/html")
    assert "Model &#x27;delay_model&#x27;: boosted_tree_classifier, label is_late, 1 version(s), version 1 deployed" \
        in model or "Model 'delay_model': boosted_tree_classifier" in model
    assert "roc_auc" in model
    assert "top_feature_attributions" in shown(executed, "delays.explain(", "text/plain")
    card = shown(executed, "delays.card()", "text/html")
    assert card.startswith("<iframe srcdoc=") and "Model card" in card
