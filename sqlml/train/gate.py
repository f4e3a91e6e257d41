"""The deploy gate on every retrain: a new version is deployed only when it is not worse than the
deployed one on the same held-out rows (docs/release.md, "The gate on every retrain").

``deploy = 'if_not_worse'`` (the default) scores both versions on the new version's evaluation rows
— with the same split options and the same training rows these are rows neither was trained on — on
the primary metric (``primary_metric``, else roc_auc for a binary classifier, log_loss for a
multiclass one, r2_score for a regressor, davies_bouldin_index for k-means), and deploys the new
version when it is worse by no more than ``deploy_tolerance`` (in the metric's units) and also beats
its trivial baseline. ``'always'`` is BigQuery's behaviour; ``'never'`` stores the version only.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..errors import OptionError
from ..model import metrics
from ..model.baseline import Baseline, metric_values
from ..model.kinds import CLASSIFICATION, CLUSTERING
from ..model.loaded import LoadedModel


@dataclass
class Verdict:
    deploy: bool
    reason: str
    metric: str | None = None
    new_value: float | None = None
    old_value: float | None = None
    eval_rows: int | None = None


def decide(options: dict, new: LoadedModel, deployed: LoadedModel | None, rows: pa.Table,
           on_training_rows: bool, deployed_rows: pa.Table | None = None) -> Verdict:
    """Whether ``new`` replaces ``deployed``, and the one sentence that says why. ``deployed_rows`` are
    the same held-out rows with the columns the deployed version reads (None: they could not be had)."""
    mode = options.get("deploy", "if_not_worse")
    if deployed is None:
        return Verdict(True, "the first version of a model is deployed")
    if mode == "always":
        return Verdict(True, "deploy = 'always'")
    if mode == "never":
        return Verdict(False, "deploy = 'never': stored for comparison only")
    metric = primary_metric(new, options)
    if deployed_rows is None:
        return Verdict(False, "the deployed version reads columns the new training query does not select, and its "
                       "own training query returns other rows, so the two cannot be scored on the same rows", metric)
    new_value, old_value = score(new, rows, metric), score(deployed, deployed_rows, metric)
    tolerance = options.get("deploy_tolerance", 0.0)
    lower = metrics.lower_is_better(metric)
    not_worse = new_value <= old_value + tolerance if lower else new_value >= old_value - tolerance
    beats = beats_baseline(new, rows, metric, new_value)
    where = f"{rows.num_rows:,} {'training (no evaluation split)' if on_training_rows else 'held-out'} rows"
    verdict = "not worse than" if not_worse else "worse than"
    reason = (f"{metric} {new_value:.4g} vs {old_value:.4g} for the deployed version on the same {where}: "
              f"{verdict} it (tolerance {tolerance:g})" + ("" if beats else ", and it does not beat its baseline"))
    return Verdict(not_worse and beats, reason, metric, new_value, old_value, rows.num_rows)


def primary_metric(model: LoadedModel, options: dict) -> str:
    chosen = options.get("primary_metric")
    task = model.kind.task
    if chosen is None:
        if task == CLASSIFICATION:
            return "roc_auc" if len(model.classes) == 2 else "log_loss"
        return "davies_bouldin_index" if task == CLUSTERING else "r2_score"
    if chosen not in metrics.OBJECTIVES[task]:
        raise OptionError(f"primary_metric {chosen!r} is not a metric of a {task} model; choose one of: "
                          f"{', '.join(metrics.OBJECTIVES[task])}.")
    return chosen


def score(model: LoadedModel, rows: pa.Table, metric: str) -> float:
    value = metrics.finite(metrics.evaluate(model, rows).get(metric))
    if value is None:
        raise OptionError(f"The deploy gate's metric {metric} is undefined on these evaluation rows (one class?); "
                          "choose another primary_metric, or deploy = 'always'.")
    return value


def beats_baseline(model: LoadedModel, rows: pa.Table, metric: str, value: float) -> bool:
    if model.kind.task == CLUSTERING:
        return True
    labelled = metrics.labelled_rows(model, rows)
    baseline = metric_values(Baseline.of(model).on(metrics.true_labels(model, labelled))).get(metric)
    if baseline is None:
        return True
    return value < baseline if metrics.lower_is_better(metric) else value > baseline
