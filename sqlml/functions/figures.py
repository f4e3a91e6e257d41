"""Pictures drawn from the rows of sqlml's SQL functions: one function per picture, shared by
:mod:`sqlml.plot` (which runs the SQL) and the model card (whose handler has the rows already).

Each takes rows as a column dict (``pyarrow.Table.to_pydict()``) or a list of row dicts and returns a
:class:`matplotlib.figure.Figure` made without pyplot, so nothing is kept in a global figure list and
no display is needed (Jupyter shows a returned Figure inline; ``figure.savefig`` writes a PNG).
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from matplotlib.figure import Figure

MODEL, BASELINE, WORST = "#1f77b4", "#999999", "#d62728"
IMPORTANCE_SHOWN = 15


def _figure(width: float, height: float) -> tuple["Figure", t.Any]:
    from matplotlib.figure import Figure
    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _label(name: str, value: float | None) -> str:
    return name if value is None else f"{name} ({value:.3f})"


def roc(curve: dict, roc_auc: float | None = None) -> "Figure":
    """ML.ROC_CURVE's rows: recall against false_positive_rate, with the chance diagonal."""
    figure, ax = _figure(4.5, 4)
    points = sorted(zip(curve["false_positive_rate"], curve["recall"]))
    ax.plot([0, 1], [0, 1], ls="--", color=BASELINE, label="baseline (class prior)")
    ax.plot([p[0] for p in points], [p[1] for p in points], color=MODEL, lw=2, label=_label("model roc_auc", roc_auc))
    ax.set(xlabel="false positive rate", ylabel="recall (true positive rate)", title="ROC curve",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize=8)
    return figure


def precision_recall(curve: dict, pr_auc: float | None = None) -> "Figure":
    """ML.ROC_CURVE's rows: precision against recall, with the positive rate as the baseline."""
    figure, ax = _figure(4.5, 4)
    points = sorted((r, p) for r, p in zip(curve["recall"], curve["precision"]) if p is not None)
    positives = curve["true_positives"][0] + curve["false_negatives"][0]
    total = positives + curve["false_positives"][0] + curve["true_negatives"][0]
    ax.axhline(positives / total, ls="--", color=BASELINE, label="baseline (positive rate)")
    ax.plot([p[0] for p in points], [p[1] for p in points], color=WORST, lw=2, label=_label("model pr_auc", pr_auc))
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return figure


def confusion_counts(columns: dict) -> dict:
    """ML.CONFUSION_MATRIX's columns (expected_label, then one count column per predicted label) as
    ``{"labels": [...], "matrix": [[count, ...], ...]}``, a row per expected label."""
    columns = dict(columns)
    labels = [str(v) for v in columns.pop("expected_label")]
    return {"labels": labels, "matrix": [list(row) for row in zip(*columns.values())]}


def confusion_matrix(confusion: dict) -> "Figure":
    """A :func:`confusion_counts` matrix as a heat map, each cell's count written in it."""
    labels, counts = confusion["labels"], confusion["matrix"]
    size = 2.5 + 0.5 * len(labels)
    figure, ax = _figure(size, size * 0.85)
    image = ax.imshow(counts, cmap="Blues")
    peak = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            ax.text(j, i, f"{count:,}", ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="expected", title="Confusion matrix")
    figure.colorbar(image, ax=ax, fraction=0.046)
    return figure


def feature_importance(rows: list[dict], measure: str, source: str) -> "Figure":
    """Rows of ``feature`` and ``value`` (ML.FEATURE_IMPORTANCE's gain or ML.GLOBAL_EXPLAIN's
    attribution), the largest on top."""
    shown = sorted(rows, key=lambda r: r["value"], reverse=True)[:IMPORTANCE_SHOWN][::-1]
    figure, ax = _figure(5.5, 0.35 * len(shown) + 1.2)
    ax.barh([r["feature"] for r in shown], [r["value"] for r in shown], color="#2ca02c")
    ax.set(xlabel=measure, title=f"Global feature importance ({source})")
    return figure


def importance(rows: list[dict]) -> "Figure":
    """ML.FEATURE_IMPORTANCE's rows (by importance_gain) or ML.GLOBAL_EXPLAIN's (by attribution)."""
    if rows and "importance_gain" in rows[0]:
        return feature_importance([{"feature": r["feature"], "value": r["importance_gain"]} for r in rows],
                                  "importance_gain", "ML.FEATURE_IMPORTANCE")
    return feature_importance([{"feature": r["feature"], "value": r["attribution"]} for r in rows],
                              "mean |attribution|", "ML.GLOBAL_EXPLAIN")


def calibration(bins: list[dict]) -> "Figure":
    """Reliability: per probability bin, the mean predicted probability against the observed positive rate."""
    figure, ax = _figure(4.5, 4)
    ax.plot([0, 1], [0, 1], ls="--", color=BASELINE, label="perfectly calibrated")
    ax.plot([b["mean_probability"] for b in bins], [b["observed_rate"] for b in bins], marker="o", color=MODEL,
            lw=2, label="model")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", title="Calibration",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper left", fontsize=8)
    return figure


def slices(rows: list[dict]) -> "Figure":
    """ML.EVALUATE with slice_by: the primary metric of each slice (the overall row first), slices worse
    than overall by more than the margin in red, unreliable ones hatched."""
    metric = rows[0]["primary_metric"]
    overall, sliced = rows[0], rows[1:]
    figure, ax = _figure(6, 0.35 * len(sliced) + 1.5)
    names = [f"{r['slice_column']} = {r['slice_value']}" for r in sliced][::-1]
    values = [r[metric] if r[metric] is not None else 0.0 for r in sliced][::-1]
    bars = ax.barh(names, values, color=[WORST if r["worse_than_overall"] else MODEL for r in sliced][::-1])
    for bar, row in zip(bars, sliced[::-1]):
        if row["unreliable"]:
            bar.set_hatch("//")
    if overall[metric] is not None:
        ax.axvline(overall[metric], ls="--", color="black", label=f"overall ({overall[metric]:.3f})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel=metric, title=f"{metric} by slice (red: worse than overall)")
    return figure


def over_time(rows: list[dict]) -> "Figure":
    """ML.EVALUATE with time_column: the primary metric per window beside its baseline; degraded windows marked."""
    metric = rows[0]["primary_metric"]
    starts = [r["window_start"] for r in rows]
    figure, ax = _figure(6.5, 3.5)
    ax.plot(starts, [r[metric] for r in rows], marker="o", color=MODEL, lw=2, label="model")
    ax.plot(starts, [r[f"baseline_{metric}"] for r in rows], ls="--", color=BASELINE, label="baseline")
    degraded = [r for r in rows if r["degraded"]]
    ax.scatter([r["window_start"] for r in degraded], [r[metric] for r in degraded], color=WORST, zorder=3, s=60,
               label="degraded")
    ax.set(xlabel="window_start", ylabel=metric, title=f"{metric} over time")
    ax.legend(fontsize=8)
    figure.autofmt_xdate()
    return figure


def drift(columns: list[dict]) -> "Figure":
    """One panel per compared column (a row of ML.VALIDATE_DATA_SKEW/DRIFT with ``labels`` and the
    ``base`` and ``study`` shares the distance was computed on), its distance in the title, red if an anomaly."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 2.4 * ((len(columns) + 1) // 2)), layout="constrained")
    for index, column in enumerate(columns):
        ax = figure.add_subplot((len(columns) + 1) // 2, 2, index + 1)
        for side, color, offset in (("base", BASELINE, -0.2), ("study", MODEL, 0.2)):
            ax.bar(np.arange(len(column["labels"])) + offset, column[side], width=0.4, color=color, label=side)
        ax.set_xticks(range(len(column["labels"])), column["labels"], rotation=45, ha="right", fontsize=7)
        value = "n/a" if column["value"] is None else f"{column['value']:.3f}"
        ax.set_title(f"{column['input']}: {column['metric'].lower()} {value} (threshold {column['threshold']:g})",
                     fontsize=9, color=WORST if column["is_anomaly"] else "black")
        ax.legend(fontsize=7)
    return figure
