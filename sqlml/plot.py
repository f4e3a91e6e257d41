"""Pictures of a model, each drawn from the rows of the SQL function a user can run themselves.

    import sqlml.plot
    sqlml.plot.roc(conn, "delay_model", "SELECT * FROM delays WHERE month > 9")   # ML.ROC_CURVE
    sqlml.plot.slices(conn, "delay_model", "autumn", slice_by=["origin"])          # ML.EVALUATE, slice_by

Every function takes a connection (:class:`sqlml.Connection`, or a DuckDB connection with sqlml
registered), a model name and, where the picture needs rows, ``data``: a table name or a SELECT
(without it, the evaluation split kept at training, as the SQL functions use). Each returns a
:class:`matplotlib.figure.Figure` (shown inline by Jupyter; ``figure.savefig("roc.png")``). The
drawing is :mod:`sqlml.functions.figures`', which the model card uses too.
"""

from __future__ import annotations

import sys
import typing as t

from sqlglot import exp

from .calls import ml_call, select_of
from .functions import figures

if t.TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .connection import Connection

CALIBRATION_BINS = 10


def roc(conn: t.Any, model: str, data: str | None = None) -> "Figure":
    """ML.ROC_CURVE's recall against its false_positive_rate (binary classifiers), ML.EVALUATE's roc_auc in the legend."""
    conn = _connection(conn)
    return inline(figures.roc(_columns(conn, "ROC_CURVE", model, data), _metric(conn, model, data, "roc_auc")))


def precision_recall(conn: t.Any, model: str, data: str | None = None) -> "Figure":
    """ML.ROC_CURVE's precision against its recall (binary classifiers), ML.EVALUATE's pr_auc in the legend."""
    conn = _connection(conn)
    return inline(figures.precision_recall(_columns(conn, "ROC_CURVE", model, data), _metric(conn, model, data, "pr_auc")))


def confusion_matrix(conn: t.Any, model: str, data: str | None = None, threshold: float | None = None) -> "Figure":
    """ML.CONFUSION_MATRIX as a heat map."""
    conn = _connection(conn)
    settings = {"threshold": threshold} if threshold is not None else {}
    return inline(figures.confusion_matrix(figures.confusion_counts(_columns(conn, "CONFUSION_MATRIX", model, data, settings))))


def feature_importance(conn: t.Any, model: str) -> "Figure":
    """ML.FEATURE_IMPORTANCE's importance_gain (tree models), else ML.GLOBAL_EXPLAIN's mean |attribution|."""
    conn = _connection(conn)
    function = "FEATURE_IMPORTANCE" if conn.executor.load(model).kind.trees else "GLOBAL_EXPLAIN"
    return inline(figures.importance(_rows(conn, function, model, None)))


def calibration(conn: t.Any, model: str, data: str | None = None, bins: int = CALIBRATION_BINS) -> "Figure":
    """Reliability of a binary classifier's probabilities: ML.PREDICT's positive-class probability in
    ``bins`` equal-width bins, each bin's mean probability against the share of its rows that are positive
    (the positive class is the second of ``predicted_<label>_probs``, as ML.ROC_CURVE takes it)."""
    conn = _connection(conn)
    return inline(figures.calibration(calibration_bins(conn, model, data, bins)))


def calibration_bins(conn: "Connection", model: str, data: str | None, bins: int = CALIBRATION_BINS) -> list[dict]:
    """The rows :func:`calibration` draws: ``bin, mean_probability, observed_rate, row_count``."""
    label = conn.executor.registry.resolve(model).label
    probs = exp.column(f"predicted_{label}_probs", quoted=True)
    positive = exp.Bracket(this=probs, expressions=[exp.Literal.number(2)], offset=1)  # SQL arrays count from 1
    p = exp.Dot(this=positive, expression=exp.to_identifier("prob"))
    hit = exp.EQ(this=exp.column(label, quoted=True), expression=exp.Dot(this=positive, expression=exp.to_identifier("label")))
    bucket = exp.func("least", exp.Floor(this=exp.Mul(this=p, expression=exp.Literal.number(bins))), exp.Literal.number(bins - 1))
    columns = [exp.alias_(bucket, "bin"), exp.alias_(exp.func("avg", p), "mean_probability"),
               exp.alias_(exp.func("avg", exp.Cast(this=hit, to=exp.DataType.build("DOUBLE"))), "observed_rate"),
               exp.alias_(exp.func("count", exp.Star()), "row_count")]
    query = f"SELECT {', '.join(c.sql('duckdb') for c in columns)} FROM {ml_call('PREDICT', model, data, {})} GROUP BY ALL ORDER BY bin"
    return conn.sql(query).to_arrow_table().to_pylist()


def slices(conn: t.Any, model: str, data: str, slice_by: t.Sequence[str], **settings: t.Any) -> "Figure":
    """ML.EVALUATE with ``slice_by``: the primary metric per slice, slices worse than overall in red
    (``settings``: ML.EVALUATE's ``min_slice_size``, ``slice_margin``, ``primary_metric`` …)."""
    conn = _connection(conn)
    return inline(figures.slices(_rows(conn, "EVALUATE", model, data, {"slice_by": list(slice_by), **settings})))


def over_time(conn: t.Any, model: str, data: str, time_column: str, time_window: str = "month",
              **settings: t.Any) -> "Figure":
    """ML.EVALUATE with ``time_column`` / ``time_window``: the primary metric per window beside the
    baseline's, degraded windows marked (``settings``: ``degradation_margin``, ``primary_metric``)."""
    conn = _connection(conn)
    rows = _rows(conn, "EVALUATE", model, data, {"time_column": time_column, "time_window": time_window, **settings})
    return inline(figures.over_time(rows))


def drift(conn: t.Any, model: str | None, data: str, base: str | None = None, **settings: t.Any) -> "Figure":
    """The distributions ML.VALIDATE_DATA_SKEW compares (``model``'s stored training statistics against
    ``data``), or ML.VALIDATE_DATA_DRIFT's (``model=None``, ``base`` against ``data``): per column, both
    sides' shares over the same buckets, with the function's distance and threshold."""
    return inline(figures.drift(drift_columns(_connection(conn), model, data, base, settings)))


def drift_columns(conn: "Connection", model: str | None, data: str, base: str | None, settings: dict) -> list[dict]:
    """The rows :func:`drift` draws: the SQL function's rows, each with ``labels``, ``base`` and ``study`` shares."""
    from .model import drift as statistics

    if model is None:
        rows = _rows(conn, "VALIDATE_DATA_DRIFT", None, base, settings, data_b=data)
        buckets = {"buckets": settings.get("num_histogram_buckets", statistics.NUM_BUCKETS),
                   "rank": settings.get("num_rank_histogram_buckets", statistics.NUM_RANK)}
    else:
        rows = _rows(conn, "VALIDATE_DATA_SKEW", model, data, settings)
        buckets = {}
    kinds = {r["input"]: "categorical" if r["metric"] != statistics.JSD else "numeric" for r in rows}
    engine = conn.executor.engine
    study = statistics.statistics(lambda: engine.read_batches(select_of(data)), kinds, **buckets)
    known = (statistics.statistics(lambda: engine.read_batches(select_of(base)), kinds, **buckets) if model is None
             else conn.executor.load(model).training_stats)
    return [{**row, **_shares(known[row["input"]], study[row["input"]])} for row in rows]


def _shares(base: dict, study: dict) -> dict:
    """Both sides' shares over the buckets the distance compares (model.drift's alignment), empty ones left out."""
    import numpy as np

    from .model import drift as statistics

    if base["kind"] == "categorical":
        labels = sorted(set(base["values"]) | set(study["values"]))
        masses = [np.array([dict(zip(s["values"], s["counts"])).get(v, 0) for v in labels], float) for s in (base, study)]
    else:
        masses = list(statistics.aligned(base, study))
        union = np.unique(np.concatenate([s["edges"] for s in (base, study) if len(s["edges"]) > 1
                                          and s["edges"][0] < s["edges"][-1]] or [[]]))
        points = sorted({s["edges"][0] for s in (base, study) if len(s["edges"]) == 2 and s["edges"][0] == s["edges"][1]})
        labels = ([f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(union, union[1:])] + [f"{v:.3g}" for v in points]
                  + ["NaN", "-inf", "+inf"])
    shares = [m / m.sum() if m.sum() else m for m in masses]
    kept = [i for i in range(len(labels)) if shares[0][i] or shares[1][i]]
    return {"labels": [str(labels[i]) for i in kept], "base": [float(shares[0][i]) for i in kept],
            "study": [float(shares[1][i]) for i in kept]}


def inline(figure: "Figure") -> "Figure":
    """``figure``, which Jupyter then shows as a PNG: a Figure made without pyplot has no display
    formatter until IPython registers one (as ``%matplotlib inline`` would)."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is not None:
        from IPython.core.pylabtools import select_figure_formats
        from matplotlib.figure import Figure
        if Figure not in shell.display_formatter.formatters["image/png"].type_printers:
            select_figure_formats(shell, {"png"})
    return figure


def _connection(conn: t.Any) -> "Connection":
    """A sqlml Connection: the one given, or one wrapping a DuckDB connection (sqlml.register)."""
    from .connection import Connection, register
    return conn if isinstance(conn, Connection) else register(conn)


def _columns(conn: "Connection", function: str, model: str | None, data: str | None, settings: dict | None = None,
             data_b: str | None = None) -> dict:
    return _table(conn, function, model, data, settings or {}, data_b).to_pydict()


def _rows(conn: "Connection", function: str, model: str | None, data: str | None, settings: dict | None = None,
          data_b: str | None = None) -> list[dict]:
    return _table(conn, function, model, data, settings or {}, data_b).to_pylist()


def _table(conn: "Connection", function: str, model: str | None, data: str | None, settings: dict,
           data_b: str | None = None):
    return conn.sql(f"SELECT * FROM {ml_call(function, model, data, settings, data_b)}").to_arrow_table()


def _metric(conn: "Connection", model: str, data: str | None, metric: str) -> float | None:
    return _rows(conn, "EVALUATE", model, data)[0].get(metric)
