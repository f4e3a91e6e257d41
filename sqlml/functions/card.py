"""Model cards: what a model predicts, how it was trained, how well it does and for whom, on one page.

``ML.MODEL_CARD(MODEL m [, TABLE t | (query)] [, STRUCT(...)])`` returns one row, ``model_card``:
the card as Markdown (``'html' AS format``: a self-contained HTML page, which ``sqlml card`` writes).
STRUCT fields: ``slice_by``, ``sensitive_col`` and ``time_column`` / ``time_window`` /
``degradation_margin`` (the monitoring section's evaluation over time; all need data), ``format``, ``images`` (embed the plots
in the Markdown too), ``threshold``, and the slice settings of ML.EVALUATE (``min_slice_size``,
``slice_margin``, ``primary_metric``).

Every figure comes from the ML.* handlers themselves (:data:`HANDLERS`), so a card
never disagrees with the SQL: without data, the evaluation split kept at training; with data, the
query is read once and every function sees the same rows. Plots are matplotlib PNGs (Agg backend)
embedded as ``data:`` URIs, so the HTML needs no network.
"""

from __future__ import annotations

import base64
import io
import re
import typing as t

import jinja2
import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

from ..errors import SqlmlError
from ..model import metrics
from ..model.kinds import CLASSIFICATION, FORECASTING
from ..model.loaded import LoadedModel
from . import drift, evaluate, explain, fairness, figures
from .applies import check_applies
from .base import Call, Data
from .info import feature_info

FREE_TEXT = ("description", "intended_use", "limitations")
FORMATS = ("markdown", "html")
SLICE_SETTINGS = ("min_slice_size", "slice_margin", "primary_metric", "slice_combinations", "threshold")
WORST_SLICES = 3
#: How the training notes that only say what training did (class weights, resampling, training on a
#: sample: sqlml.train.imbalance and .sample) begin; every other note is a warning.
INFORMATION = ("auto_class_weights: ", "class_weights: ", "sampling = ", "Training on ", "Distilled from ")
#: Where one note ends in ML.TRAINING_INFO's notes, which joins them with "; ".
NOTE_START = re.compile("; (?=" + "|".join(re.escape(s) for s in ("Data check: ", "Warning: ", *INFORMATION)) + ")")
PLOTS = ("roc", "pr", "confusion", "importance")


def model_card(call: "Call") -> pa.Table:
    """The ML.MODEL_CARD handler."""
    params = call.params
    output = str(params.get("format") or "markdown").lower()
    if output not in FORMATS:
        raise SqlmlError(f"ML.MODEL_CARD format must be 'markdown' or 'html'; got {params.get('format')!r}.")
    context = gather(call, params)
    text = render(context, output, images=output == "html" or bool(params.get("images", False)))
    return pa.table({"model_card": pa.array([text], type=pa.string())})


def gather(call: "Call", params: dict) -> dict:
    """Everything a card shows, as plain Python values (the templates only format them)."""
    model = call.require_model()
    slice_by, sensitive = _names(params.get("slice_by")), _names(params.get("sensitive_col"))
    if params.get("time_column") and not call.has_input:
        raise SqlmlError("A model card's evaluation over time needs the rows to evaluate: ML.MODEL_CARD(MODEL m, "
                         "(SELECT ...), STRUCT('time_hour' AS time_column, 'month' AS time_window)).")
    if (slice_by or sensitive) and not call.has_input:
        raise SqlmlError("A model card's slices and fairness figures need evaluation data: "
                         "ML.MODEL_CARD(MODEL m, (SELECT ...), STRUCT(...)) or sqlml card --data 'SELECT ...'.")
    # The data is read once: every ML.* call below sees the same rows.
    data = Data.of_table(call.input_table()) if call.has_input else None
    run = _runner(call, data, {k: params[k] for k in ("threshold",) if params.get(k) is not None})
    context = describe(model)
    context["evaluated_on"] = call.data.source if call.has_input else None
    series = (model.info.metrics or {}).get("time_series", 0)
    context["evaluated_how"] = (f"On the fitted history (one step ahead), averaged over its {series:,} time series."
                                if model.kind.task == FORECASTING else
                                f"On the evaluation split kept at training ({model.info.eval_rows:,} rows).")
    context.update(evaluation(run))
    context.update(curves(run, model))
    context["importance"] = importance(run, model, context["warnings"])
    context["slices"] = sliced(run, slice_by, params) if slice_by else None
    context["fairness"] = run("FAIRNESS", sensitive_col=sensitive).to_pylist() if sensitive else None
    context["drift"] = drifted(model, data) if data is not None and model.kind.task != FORECASTING else None
    context["over_time"] = over_time(run, params) if params.get("time_column") else None
    context["warnings"] += warnings(context)
    return context


def _names(value: t.Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


#: The handlers a card reads its figures from (not the whole table in :mod:`sqlml.functions`, which lists this module).
HANDLERS = {"EVALUATE": evaluate.evaluate, "CONFUSION_MATRIX": evaluate.confusion_matrix, "ROC_CURVE": evaluate.roc_curve,
            "FAIRNESS": fairness.fairness, "FEATURE_IMPORTANCE": explain.feature_importance,
            "GLOBAL_EXPLAIN": explain.global_explain}


def _runner(card: "Call", data: Data | None, common: dict):
    """``run('EVALUATE', slice_by=[...])``: an ML.* handler's Arrow result for this model and data."""
    def run(function: str, with_data: bool = True, **params: t.Any) -> pa.Table:
        call = Call(function=function, model=card.model, data=data if with_data else None,
                    params={**common, **params}, training=card.training)
        return HANDLERS[function](call)
    return run


def describe(model: "LoadedModel") -> dict:
    """What the model is and how it was trained, from the registry row."""
    info = model.info
    options = info.options or {}
    return {
        "name": info.name, "version": info.version, "model_type": info.model_type, "task": model.kind.task,
        "label": info.label, "classes": [str(c) for c in model.classes] if model.classes else None,
        "created_at": info.created_at, "training_rows": info.training_rows, "eval_rows": info.eval_rows,
        "query": info.query, "library_versions": info.library_versions or {},
        "options": {k: v for k, v in sorted(options.items()) if k not in FREE_TEXT},
        "free_text": {k: options.get(k) for k in FREE_TEXT},
        "features": feature_info(Call("FEATURE_INFO", model)).to_pylist(),
        **training_notes(info.training_info or []),
    }


def training_notes(rows: list[dict]) -> dict[str, list[str]]:
    """ML.TRAINING_INFO's notes, each once, split back into the notes they were joined from:
    ``warnings`` (convergence, imbalance, data checks) and ``training_notes`` (what training did)."""
    notes = []
    for row in rows:
        for note in NOTE_START.split(row.get("notes") or ""):
            if note and note not in notes:
                notes.append(note)
    return {"warnings": [n for n in notes if not n.startswith(INFORMATION)],
            "training_notes": [n for n in notes if n.startswith(INFORMATION)]}


def evaluation(run) -> dict:
    """ML.EVALUATE's row, regrouped as one line per metric: model, baseline, lift (a forecaster's rows, one
    per time series, averaged)."""
    rows = run("EVALUATE").to_pylist()
    row = rows[0] if len(rows) == 1 else averaged(rows)
    metrics = [k for k in row if f"lift_{k}" in row]
    if not metrics:  # clustering: no baseline
        metrics = [k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {"evaluation": [{"metric": k, "model": row[k], "baseline": row.get(f"baseline_{k}"),
                            "lift": row.get(f"lift_{k}")} for k in metrics],
            "evaluation_row": row}


def averaged(rows: list[dict]) -> dict:
    """One row of several (a time series model's, one per series): each figure's mean over the rows that
    have it; beats_baseline judged on the mean lift of the primary metric."""
    row = dict(rows[0])
    for name, value in rows[0].items():
        if isinstance(value, float) or value is None:
            values = [r[name] for r in rows if isinstance(r.get(name), (int, float)) and not isinstance(r[name], bool)]
            row[name] = sum(values) / len(values) if values else None
    lift = row.get(f"lift_{row.get('primary_metric')}")
    if "beats_baseline" in row:
        row["beats_baseline"] = None if lift is None else lift > 0
    return row


def curves(run, model: "LoadedModel") -> dict:
    """ROC/PR points (binary classifiers) and the confusion matrix (classifiers)."""
    if model.kind.task != CLASSIFICATION:
        return {"roc": None, "confusion": None}
    roc = run("ROC_CURVE").to_pydict() if len(model.classes) == 2 else None
    return {"roc": roc, "confusion": figures.confusion_counts(run("CONFUSION_MATRIX").to_pydict())}


def importance(run, model: "LoadedModel", notes: list[str]) -> dict | None:
    """Global importance: split gain for trees (ML.FEATURE_IMPORTANCE), else mean |attribution|
    (ML.GLOBAL_EXPLAIN, which re-runs the training query: a card must not fail if that is gone)."""
    if model.kind.task == FORECASTING:  # its parts are ML.EXPLAIN_FORECAST's, per time point
        return None
    try:
        check_applies("GLOBAL_EXPLAIN", model)
        if model.kind.trees:
            rows = run("FEATURE_IMPORTANCE", with_data=False).to_pylist()
            return {"source": "ML.FEATURE_IMPORTANCE", "measure": "importance_gain",
                    "rows": [{"feature": r["feature"], "value": r["importance_gain"]} for r in rows]}
        rows = run("GLOBAL_EXPLAIN", with_data=False).to_pylist()
        return {"source": "ML.GLOBAL_EXPLAIN", "measure": "mean |attribution|",
                "rows": [{"feature": r["feature"], "value": r["attribution"]} for r in rows]}
    except SqlmlError as e:
        notes.append(f"Global feature importance is unavailable: {e}")
        return None


def sliced(run, slice_by: list[str], params: dict) -> dict:
    """ML.EVALUATE with slice_by; the worst reliable slices by the primary metric are named."""
    settings = {k: params[k] for k in SLICE_SETTINGS if params.get(k) is not None}
    rows = run("EVALUATE", slice_by=slice_by, **settings).to_pylist()
    primary = rows[0]["primary_metric"]
    lower_is_better = primary in metrics.LOWER_IS_BETTER
    candidates = [r for r in rows[1:] if r[primary] is not None and not r["unreliable"]]
    candidates.sort(key=lambda r: r[primary], reverse=lower_is_better)
    worst = [r for r in candidates if r["worse_than_overall"]][:WORST_SLICES]
    return {"primary": primary, "rows": rows, "worst": worst}


def drifted(model: "LoadedModel", data: Data) -> dict:
    """The monitoring section's drift table: ML.VALIDATE_DATA_SKEW of the rows given, or why there is none."""
    if model.transform:
        return {"rows": [], "note": "The data given was read through the model's TRANSFORM; compare its raw rows "
                                    f"with ML.VALIDATE_DATA_SKEW(MODEL {model.info.name}, (SELECT ...))."}
    try:
        return {"rows": drift.validate_data_skew(Call("VALIDATE_DATA_SKEW", model, data)).to_pylist(), "note": None}
    except SqlmlError as e:
        return {"rows": [], "note": str(e)}


def over_time(run, params: dict) -> dict:
    """The monitoring section's evaluation over time: ML.EVALUATE per window of ``time_column``."""
    settings = {k: params[k] for k in ("time_column", "time_window", "degradation_margin", "primary_metric")
                if params.get(k) is not None}
    rows = run("EVALUATE", **settings).to_pylist()
    return {"primary": rows[0]["primary_metric"] if rows else None, "rows": rows,
            "degraded": [r for r in rows if r["degraded"]]}


def warnings(context: dict) -> list[str]:
    """Findings a reader must not miss, beyond the training notes."""
    found = []
    row = context["evaluation_row"]
    if row.get("beats_baseline") is False:
        found.append(f"The model does not beat its trivial baseline ({row['baseline_strategy']}) on "
                     f"{row['primary_metric']}.")
    if context["slices"]:
        rows = context["slices"]["rows"][1:]
        worse = sum(bool(r["worse_than_overall"]) for r in rows)
        unreliable = sum(bool(r["unreliable"]) for r in rows)
        if worse:
            found.append(f"{worse} of {len(rows)} slices score worse than overall on {context['slices']['primary']} "
                         "by more than the margin.")
        if unreliable:
            found.append(f"{unreliable} of {len(rows)} slices have too few rows to trust their figures.")
    moved = [r["input"] for r in (context["drift"] or {}).get("rows", []) if r["is_anomaly"]]
    if moved:
        found.append(f"The data given drifted from the training data in {', '.join(moved)} (ML.VALIDATE_DATA_SKEW).")
    if context["over_time"] and context["over_time"]["degraded"]:
        over_time_ = context["over_time"]
        found.append(f"{len(over_time_['degraded'])} of {len(over_time_['rows'])} time windows score worse than at "
                     f"training on {over_time_['primary']} by more than the degradation margin.")
    return found


def plots(context: dict) -> dict[str, str]:
    """PNG ``data:`` URIs of the card's plots, by name (None where a plot does not apply), drawn by
    :mod:`sqlml.functions.figures` as ``sqlml.plot`` draws them."""
    drawn = dict.fromkeys(PLOTS)
    if context["roc"]:
        drawn["roc"] = _png(figures.roc(context["roc"], context["evaluation_row"].get("roc_auc")))
        drawn["pr"] = _png(figures.precision_recall(context["roc"], context["evaluation_row"].get("pr_auc")))
    if context["confusion"]:
        drawn["confusion"] = _png(figures.confusion_matrix(context["confusion"]))
    if context["importance"] and context["importance"]["rows"]:
        ranked = context["importance"]
        drawn["importance"] = _png(figures.feature_importance(ranked["rows"], ranked["measure"], ranked["source"]))
    return drawn


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def fmt(value: t.Any) -> str:
    """Numbers as a card shows them: counts with separators, measures to 4 decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10_000 else f"{value:.4f}"
    return str(value)


def _cell(value: t.Any) -> str:
    """A Markdown table cell: pipes escaped, one line."""
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("sqlml", "templates"), trim_blocks=True, lstrip_blocks=True,
                             autoescape=jinja2.select_autoescape(["html.j2"]), undefined=jinja2.StrictUndefined)
    env.filters.update(fmt=fmt, cell=_cell)
    return env


def render(context: dict, output: str = "markdown", images: bool = False) -> str:
    """The card as Markdown or HTML; ``images`` embeds the plots (always in HTML)."""
    template = _environment().get_template("card.html.j2" if output == "html" else "card.md.j2")
    drawn = plots(context) if images else dict.fromkeys(PLOTS)
    return template.render(card=context, plots=drawn, free_text=FREE_TEXT)


def card_query(model: str, data_sql: str | None = None, slice_by: t.Sequence[str] = (),
               sensitive_col: str | None = None, output: str = "html", time_column: str | None = None,
               time_window: str | None = None) -> str:
    """The ``SELECT model_card FROM ML.MODEL_CARD(...)`` statement ``sqlml card`` runs; ML.MODEL_CARD
    checks the settings (a time column needs data, the window is one ML.EVALUATE knows)."""
    try:
        name = exp.to_table(model, dialect="sqlml").sql("sqlml")
    except (ParseError, ValueError):
        raise SqlmlError(f"{model!r} is not a model name.") from None
    fields = [f"{exp.Literal.string(output).sql()} AS format"]
    if slice_by:
        fields.append(f"[{', '.join(exp.Literal.string(c).sql() for c in slice_by)}] AS slice_by")
    for field, value in (("sensitive_col", sensitive_col), ("time_column", time_column), ("time_window", time_window)):
        if value:
            fields.append(f"{exp.Literal.string(value).sql()} AS {field}")
    data = f"({data_sql.strip().rstrip(';')}), " if data_sql else ""
    return f"SELECT model_card FROM ML.MODEL_CARD(MODEL {name}, {data}STRUCT({', '.join(fields)}))"
