"""Model cards (ML.MODEL_CARD, ``sqlml card``) and the what-if pattern of docs/model_cards.md.

A card's figures are read back from its text and compared with what the ML.* functions return.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

import sqlml
from sqlml import datasets
from sqlml.cli import main
from sqlml.errors import ModelNotFoundError, SqlmlError

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
SETUP = """
CREATE OR REPLACE TABLE late_flights AS
SELECT month, dep_delay, sched_dep_time, distance, carrier, origin, dest, arr_delay > 15 AS is_late
FROM flights WHERE arr_delay IS NOT NULL AND day IN (1, 15);
CREATE OR REPLACE MODEL late_model OPTIONS (model_type = 'logistic_reg', input_label_cols = ['is_late']) AS
SELECT * EXCLUDE (month) FROM late_flights WHERE month <= 9;
"""
LATER = "(SELECT * FROM late_flights WHERE month > 9)"
PLOT_IDS = {"roc-curve", "pr-curve", "confusion-matrix", "importance-plot"}


@pytest.fixture(scope="module")
def late():
    """A flights connection with a delay model, shared by the tests that only read it."""
    with sqlml.connect(progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "flights")
        conn.sql(SETUP)
        yield conn


@pytest.fixture(scope="module")
def late_html(late):
    """The HTML card of the delay model, on later months, sliced and with fairness figures."""
    return late.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL late_model, {LATER}, STRUCT("
                    "['carrier', 'origin'] AS slice_by, 'origin' AS sensitive_col, 'html' AS format))").fetchall()[0][0]


def card(conn, model: str, extra: str = "") -> str:
    return conn.sql(f"SELECT model_card FROM ML.MODEL_CARD(MODEL {model}{extra})").fetchall()[0][0]


def md_table(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading`` (header and rule dropped)."""
    after = markdown[markdown.index(heading):].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    rows = []
    for line in after[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def number(cell: str) -> float | None:
    return None if cell == "—" else float(cell.replace(",", "").strip("*"))


def close(cell: str, value: float | None, decimals: int = 4) -> bool:
    """A card cell shows ``value`` rounded to ``decimals`` (or a dash for NULL)."""
    if value is None:
        return cell == "—"
    return abs(number(cell) - value) <= 0.5 * 10 ** -decimals + 1e-12


def html_rows(html: str, table_id: str) -> list[list[str]]:
    """Cell texts of an HTML table's body rows."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S) for row in rows]


def images(html: str) -> dict[str, Image.Image]:
    found = re.findall(r'<img id="([\w-]+)" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    return {name: Image.open(io.BytesIO(base64.b64decode(data))) for name, data in found}


# --- the card's figures are the ML.* functions' figures --------------------------------------------------

def test_markdown_card_equals_the_ml_functions(late):
    markdown = card(late, "late_model")
    stored = late.sql("SELECT training_rows, eval_rows, query FROM sqlml.models WHERE name = 'late_model'").fetchall()[0]
    evaluation = late.sql("SELECT * FROM ML.EVALUATE(MODEL late_model)").to_arrow_table().to_pylist()[0]
    shown = {row[0]: row[1:] for row in md_table(markdown, "## Evaluation")}
    assert set(shown) == {"precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc", "pr_auc"}
    for metric, (model, baseline, lift) in shown.items():
        assert close(model, evaluation[metric]) and close(baseline, evaluation[f"baseline_{metric}"])
        assert close(lift, evaluation[f"lift_{metric}"])
    assert f"Beats the baseline: **{'yes' if evaluation['beats_baseline'] else 'no'}**" in markdown

    confusion = late.sql("SELECT expected_label::VARCHAR, \"false\", \"true\" FROM ML.CONFUSION_MATRIX(MODEL late_model) "
                         "ORDER BY 1").fetchall()
    shown = md_table(markdown, "### Confusion matrix")
    assert [(row[0].lower(), number(row[1]), number(row[2])) for row in shown] == confusion
    assert sum(c[1] + c[2] for c in confusion) == stored[1]

    features = late.sql("SELECT input, mean, stddev, category_count, null_count FROM ML.FEATURE_INFO(MODEL late_model)")
    shown = {row[0]: row for row in md_table(markdown, "### Features")}
    for name, mean, stddev, categories, nulls in features.fetchall():
        assert close(shown[name][3], mean) and close(shown[name][5], stddev)
        assert close(shown[name][6], categories, 0) and close(shown[name][7], nulls, 0)

    importance = late.sql("SELECT feature, attribution FROM ML.GLOBAL_EXPLAIN(MODEL late_model)").fetchall()
    shown = md_table(markdown, "## Global feature importance (ML.GLOBAL_EXPLAIN)")
    assert [row[0] for row in shown] == [f for f, _ in importance]
    assert all(close(row[1], value) for row, (_, value) in zip(shown, importance))

    assert f"| Training rows | {stored[0]:,} |" in markdown and f"```sql\n{stored[2]}\n```" in markdown
    assert "model that predicts **is_late** (classes: False, True)" in markdown
    assert "ROC and precision-recall curves" in markdown and "data:image" not in markdown


def test_html_card_on_given_data_with_slices_and_fairness(late, late_html):
    html = late_html
    evaluation = late.sql(f"SELECT * FROM ML.EVALUATE(MODEL late_model, {LATER})").to_arrow_table().to_pylist()[0]
    for metric in ("roc_auc", "accuracy", "log_loss"):
        assert (f'<td class="text">{metric}</td><td>{evaluation[metric]:.4f}</td>'
                f'<td>{evaluation["baseline_" + metric]:.4f}</td>') in html
    confusion = late.sql(f'SELECT "false", "true" FROM ML.CONFUSION_MATRIX(MODEL late_model, {LATER}) '
                         "ORDER BY expected_label").fetchall()
    assert [tuple(int(c.replace(",", "")) for c in row[1:]) for row in html_rows(html, "confusion")] == confusion

    slices = late.sql(f"SELECT slice_column, slice_value, roc_auc, worse_than_overall, unreliable FROM ML.EVALUATE("
                      f"MODEL late_model, {LATER}, STRUCT(['carrier', 'origin'] AS slice_by)) "
                      "WHERE slice_column IS NOT NULL").fetchall()
    flagged = {(column, value) for column, value, _, worse, _ in slices if worse}
    highlighted = set(re.findall(r'<tr class="worst">\s*<td class="text">(.*?)</td><td class="text">(.*?)</td>', html))
    assert flagged and highlighted == flagged
    auc, column, value = min((auc, column, value) for column, value, auc, worse, small in slices if worse and not small)
    assert re.search(rf"Worst slices on roc_auc:\s*<strong>{column} = {value}</strong> \({auc:.4f}\)", html)

    fairness = late.sql(f"SELECT DISTINCT demographic_parity_difference, equalized_odds_difference FROM "
                        f"ML.FAIRNESS(MODEL late_model, {LATER}, STRUCT('origin' AS sensitive_col))").fetchall()
    assert len(fairness) == 1
    assert f"<td>{fairness[0][0]:.4f}</td>" in html and f"<td>{fairness[0][1]:.4f}</td>" in html


def test_html_is_self_contained_with_real_plots(late_html):
    html = late_html
    plots = images(html)
    assert set(plots) == PLOT_IDS
    for name, image in plots.items():
        assert image.format == "PNG" and image.width > 250 and image.height > 250, name
        assert len(image.convert("RGB").getcolors(1 << 20)) > 20, f"{name} looks blank"
    for remote in ("http://", "https://", "<script", "<link", "url(", "@import"):
        assert remote not in html


def test_free_text_appears_after_alter_model(penguins):
    penguins.sql("CREATE MODEL sex_model OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL")
    before = card(penguins, "sex_model")
    for key in ("description", "intended_use", "limitations"):
        assert f"`ALTER MODEL sex_model SET OPTIONS ({key} = '…')`" in before
    penguins.sql("ALTER MODEL sex_model SET OPTIONS (description = 'Sex of a penguin from its measurements.', "
                 "intended_use = 'Teaching <b>only</b>.', limitations = 'Three islands, 2007 to 2009.')")
    after = card(penguins, "sex_model")
    assert "## Description\n\nSex of a penguin from its measurements.\n" in after
    assert "## Intended use\n\nTeaching <b>only</b>.\n" in after
    assert "## Limitations\n\nThree islands, 2007 to 2009.\n" in after
    assert "SET OPTIONS (" not in after
    assert "description" not in [row[0] for row in md_table(after, "### Options")]
    html = card(penguins, "sex_model", ", STRUCT('html' AS format)")
    assert "Teaching &lt;b&gt;only&lt;/b&gt;." in html and "<b>only" not in html


def test_training_notes_and_data_checks_are_warnings(penguins):
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * EXCLUDE (year), 'Antarctica' AS continent, NULL::DOUBLE AS tag FROM penguins")
    notes = penguins.sql("SELECT DISTINCT notes FROM ML.TRAINING_INFO(MODEL m)").fetchall()
    assert len(notes) == 1 and "'continent'" in notes[0][0] and "'tag'" in notes[0][0]
    shown = card(penguins, "m").split("## Warnings\n\n")[1].splitlines()
    assert "; ".join(line.removeprefix("- ") for line in shown) == notes[0][0]
    assert any(line.startswith("- Data check: 'continent'") for line in shown)
    assert any(line.startswith("- Data check: 'tag'") for line in shown)


def test_trees_regressors_and_multiclass(penguins):
    penguins.sql("""
        CREATE MODEL species_model OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'],
                                           random_seed = 1) AS SELECT * EXCLUDE (year) FROM penguins;
        CREATE MODEL mass_model OPTIONS (model_type = 'linear_reg', input_label_cols = ['body_mass_g']) AS
        SELECT * EXCLUDE (year) FROM penguins WHERE body_mass_g IS NOT NULL""")
    markdown = card(penguins, "species_model")
    gains = penguins.sql("SELECT feature, importance_gain FROM ML.FEATURE_IMPORTANCE(MODEL species_model)").fetchall()
    shown = md_table(markdown, "## Global feature importance (ML.FEATURE_IMPORTANCE)")
    assert [(row[0], round(number(row[1]), 4)) for row in shown] == [(f, round(g, 4)) for f, g in gains]
    assert [row[0] for row in md_table(markdown, "### Confusion matrix")] == ["Adelie", "Chinstrap", "Gentoo"]
    assert "ROC and precision-recall" not in markdown
    assert set(images(card(penguins, "species_model", ", STRUCT('html' AS format)"))) == {"confusion-matrix",
                                                                                         "importance-plot"}

    markdown = card(penguins, "mass_model")
    r2 = penguins.sql("SELECT r2_score, baseline_r2_score FROM ML.EVALUATE(MODEL mass_model)").fetchall()[0]
    shown = {row[0]: row[1:] for row in md_table(markdown, "## Evaluation")}
    assert close(shown["r2_score"][0], r2[0]) and close(shown["r2_score"][1], r2[1])
    assert "Confusion matrix" not in markdown and "mean_squared_error" in shown


def test_card_errors(penguins):
    penguins.sql("CREATE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL")
    with pytest.raises(SqlmlError, match="slices and fairness figures need evaluation data"):
        card(penguins, "m", ", STRUCT('island' AS slice_by)")
    with pytest.raises(SqlmlError, match="The 'format' parameter of ML.MODEL_CARD must be one of 'markdown', 'html'. Got 'pdf'."):
        card(penguins, "m", ", STRUCT('pdf' AS format)")
    with pytest.raises(ModelNotFoundError, match="Model 'nope' does not exist"):
        card(penguins, "nope")


# --- the command line and the browser -------------------------------------------------------------------------

@pytest.fixture
def penguin_db(tmp_path):
    """A database file holding the penguins and a binary classifier of their sex."""
    path = str(tmp_path / "penguins.duckdb")
    with sqlml.connect(path, progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "penguins")
        conn.sql("CREATE MODEL sex_model OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex']) AS "
                 "SELECT * EXCLUDE (year) FROM penguins WHERE sex IS NOT NULL")
    return path


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output + (result.stderr or "")
    return result


def test_cli_writes_the_html_card(penguin_db, tmp_path):
    out = tmp_path / "card.html"
    result = invoke("card", "sex_model", "--db", penguin_db, "-o", str(out), "--data",
                    "SELECT * FROM penguins WHERE sex IS NOT NULL", "--slice-by", "island", "--slice-by", "species",
                    "--sensitive-col", "island")
    assert result.exit_code == 0, result.output
    assert f"written to {out}" in result.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and set(images(html)) == PLOT_IDS
    section = {name: re.search(rf'<section id="{name}">(.*?)</section>', html, re.S).group(1)
               for name in ("slices", "fairness")}
    assert section["slices"].count('<td class="text">island</td>') == 3  # Biscoe, Dream, Torgersen
    assert section["slices"].count('<td class="text">species</td>') == 3
    assert section["fairness"].count('<td class="text">island</td>') == 3 + 1  # the groups, then the summary


@pytest.mark.parametrize("args, message", [
    (["nope"], "Error: Model 'nope' does not exist. Models in this database: sex_model."),
    (["sex_model", "--slice-by", "island"], "Error: A model card's slices and fairness figures need evaluation data"),
    (["sex_model", "-o", "/no/such/dir/card.html"], "Error: Cannot write the model card to /no/such/dir/card.html"),
])
def test_cli_user_errors_exit_1(penguin_db, args, message):
    result = invoke("card", *args, "--db", penguin_db)
    assert result.exit_code == 1
    assert message in result.stderr


def test_browser_renders_the_card(late_html):
    """Headless Chromium draws the page, plots included (the ROC line's colour is on screen)."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it with apt-get when it can)")
    ARTIFACTS.mkdir(exist_ok=True)
    page, shot = ARTIFACTS / "model_card.html", ARTIFACTS / "model_card.png"
    page.write_text(late_html)
    shot.unlink(missing_ok=True)
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}",
                    "--window-size=1200,3000", page.as_uri()], check=True, capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 3000)
    colours = dict((rgb, n) for n, rgb in image.getcolors(1 << 22))
    assert len(colours) > 200
    assert colours.get((31, 119, 180), 0) > 100  # matplotlib's default blue: the ROC curve was decoded and drawn
    assert colours.get((255, 255, 255), 0) < 0.9 * 1200 * 3000


# --- what-if ---------------------------------------------------------------------------------------------------

def sql_blocks(path: Path) -> list[str]:
    return re.findall(r"```sql\n(.*?)```", path.read_text(), re.S)


def by_hand(conn, rows) -> np.ndarray:
    """P(is_late) of a logistic model from ML.WEIGHTS: intercept + Σ weight × value + category weights."""
    logit = np.zeros(len(rows))
    for name, weight, categories, _ in conn.sql("SELECT * FROM ML.WEIGHTS(MODEL late_model)").fetchall():
        if name == "__INTERCEPT__":
            logit += weight
        elif weight is not None:
            logit += weight * rows[name].to_numpy(dtype=float)
        else:
            lookup = {c["category"]: c["weight"] for c in categories}
            logit += rows[name].map(lambda v: lookup.get(v, 0.0)).to_numpy()
    return 1 / (1 + np.exp(-logit))


def test_what_if_docs_and_example(tmp_path):
    """docs/model_cards.md's SQL, in order; the counterfactual equals the model scored by hand on changed rows."""
    with sqlml.connect(progress=lambda message: None) as conn:
        datasets.load(conn.duckdb, "flights")
        results = [conn.sql(block) for block in sql_blocks(ROOT / "docs" / "model_cards.md")]
        side_by_side = next(r for r in results if r is not None and "p_late_if_30_min_later" in r.columns).df()
        october = conn.sql("SELECT * FROM october ORDER BY flight_id").df()
        assert side_by_side.flight_id.tolist() == october.flight_id.tolist()
        np.testing.assert_allclose(side_by_side.p_late, by_hand(conn, october), rtol=0, atol=1e-12)
        later = october.assign(dep_delay=october.dep_delay + 30)
        np.testing.assert_allclose(side_by_side.p_late_if_30_min_later, by_hand(conn, later), rtol=0, atol=1e-12)
        assert (side_by_side.predicted_is_late_if_30_min_later == (by_hand(conn, later) > 0.5)).all()

        summary = next(r for r in results if r is not None and "flip_to_late" in r.columns).fetchall()[0]
        flips = (~side_by_side.predicted_is_late & side_by_side.predicted_is_late_if_30_min_later).sum()
        assert summary[:2] == (len(october), flips) and flips > 0
        assert summary[2] == pytest.approx((side_by_side.p_late_if_30_min_later - side_by_side.p_late).mean())

        positional = next(r for r in results if r is not None and "dep_delay_if_later" in r.columns).df()
        assert (positional.dep_delay_if_later == positional.dep_delay + 30).all()
        assert sorted(zip(positional.dep_delay, positional.if_later)) == sorted(
            zip(side_by_side.dep_delay, side_by_side.predicted_is_late_if_30_min_later))

        curve = next(r for r in results if r is not None and "extra_delay_minutes" in r.columns).fetchall()
        expected = [by_hand(conn, october.assign(dep_delay=october.dep_delay + d)).mean() for d in (0, 15, 30, 60)]
        assert [c[0] for c in curve] == [0, 15, 30, 60]
        np.testing.assert_allclose([c[2] for c in curve], expected, rtol=1e-12)

        markdown = [r for r in results if r is not None and "model_card" in r.columns][-1].fetchall()[0][0]
        assert "Ranking departed flights for gate and connection planning." in markdown
        assert "## Slices" in markdown and "## Fairness" in markdown
        example = conn.sql((ROOT / "examples" / "model_card.sql").read_text()).fetchall()
        assert example[0][0] == len(conn.sql("SELECT * FROM october").fetchall())


def test_class_weights_are_a_training_note_not_a_warning(penguins):
    """What training did (class weights) is listed under Training; Warnings keeps what may be wrong."""
    penguins.sql("CREATE MODEL w OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'], "
                 "auto_class_weights = TRUE) AS SELECT * EXCLUDE (year), 'Antarctica' AS continent FROM penguins")
    (notes,) = penguins.sql("SELECT DISTINCT notes FROM ML.TRAINING_INFO(MODEL w)").fetchall()[0]
    sex = penguins.sql("SELECT sex FROM penguins WHERE sex IS NOT NULL").df().sex  # every row trains (under 500)
    balanced = compute_class_weight("balanced", classes=np.array(["female", "male"]), y=sex)
    weights = f"auto_class_weights: female: {balanced[0]:.4g}, male: {balanced[1]:.4g}"
    assert weights in notes
    markdown = card(penguins, "w")
    training, warnings = markdown.split("## Training\n")[1].split("## Evaluation")[0], markdown.split("## Warnings\n")[1]
    assert f"Training notes:\n\n- {weights}\n" in training
    assert weights not in warnings and "class_weights" not in warnings
    assert "- Data check: 'continent'" in warnings  # a real warning stays a warning
    html = card(penguins, "w", ", STRUCT('html' AS format)")
    assert f"<h3>Training notes</h3>\n  <ul class=\"training-notes\"><li>{weights}</li></ul>" in html
    assert weights not in html.split('<section id="warnings">')[1].split("</section>")[0]
