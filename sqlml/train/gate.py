"""The deploy gate on every retrain: a new version is deployed only when it is not worse than the
deployed one on the same held-out rows (docs/release.md, "The gate on every retrain").

``deploy = 'if_not_worse'`` (the default) scores both versions on the rows that both held out when
they were trained (:func:`shared_rows`; the hash split of :mod:`sqlml.train.split` keeps a held-out row
held out as rows are added, so these are the new version's evaluation rows when the two split alike) on
the primary metric (``primary_metric``, else roc_auc for a binary classifier, log_loss for a
multiclass one, r2_score for a regressor, davies_bouldin_index for k-means), and deploys the new
version when it is worse by no more than ``deploy_tolerance`` (in the metric's units) and also beats
its trivial baseline — and, with ``deploy_significance`` (e.g. 0.05), only when it is significantly
better (:func:`significantly_better`). ``'always'`` is BigQuery's behaviour; ``'never'`` stores the version only.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..errors import DataError, OptionError, SqlmlError
from ..model import bootstrap, metrics
from ..model.baseline import Baseline, metric_values, primary_metric
from ..model.kinds import RECOMMENDATION, UNSUPERVISED
from ..model.loaded import LoadedModel
from ..model.metrics import Scored
from .labels import prepare_label
from .split import HASHED, held_out_by, row_hashes, split_rows

BOOTSTRAP_RESAMPLES = 1000  # ML.COMPARE's default num_bootstrap


@dataclass
class Verdict:
    deploy: bool
    reason: str
    metric: str | None = None
    new_value: float | None = None
    old_value: float | None = None
    eval_rows: int | None = None
    remedy: str | None = None  # how to deploy it anyway, when ALTER MODEL ... DEPLOY VERSION would not


@dataclass
class Rows:
    """The rows both versions are scored on, as each of them reads them."""
    new: pa.Table
    deployed: pa.Table | None  # None: the same rows could not be had
    caveat: str = ""  # why the deployed version may have been trained on some of them


def shared_rows(new_model: LoadedModel, deployed: LoadedModel, eval_rows: pa.Table, new_table: pa.Table,
                deployed_columns: list[str], deployed_table: t.Callable[[], pa.Table]) -> Rows:
    """The new version's evaluation rows (``eval_rows``, of the training query's rows ``new_table``)
    that the deployed version held out too (:func:`held_out_by` with its own seed and fraction). When
    the new rows carry every column the deployed version's training query returned, its rule is
    applied to them; else its own query is read (``deployed_table``) and paired with the new one row
    by row — only when both return as many labelled rows; else the rows cannot be had."""
    options, eval_count = deployed.info.options, deployed.info.eval_rows
    new, new_options = _labelled(new_model, new_table), new_model.info.options
    seed = new_options.get("random_seed")
    hashes = row_hashes(new, seed) if new_options.get("data_split_method", "AUTO_SPLIT") in HASHED else None
    positions = split_rows(new, new_options, seed, hashes).eval
    if positions is None or len(positions) != eval_rows.num_rows:
        return Rows(eval_rows, None)
    if set(deployed_columns) <= set(new.column_names):  # the same columns and seed: the same row hashes
        same = set(deployed_columns) == set(new.column_names) and options.get("random_seed") == seed
        held = held_out_by(options, eval_count, new.select(deployed_columns), hashes if same else None)
        return _kept(eval_rows, eval_rows, None if held is None else held[positions])
    old = _labelled(deployed, deployed_table())
    if old.num_rows != new.num_rows:
        return Rows(eval_rows, None)
    held = held_out_by(options, eval_count, old)
    return _kept(eval_rows, old.take(positions), None if held is None else held[positions])


def unsigned_query_rows(deployed: LoadedModel, eval_rows: pa.Table) -> Rows:
    """The new version's evaluation rows, for a deployed version stored by an older sqlml, whose
    training query its signature does not cover: which of them it held out is not recomputed from it."""
    readable = set(deployed.preprocessor.input_columns) | {deployed.label} <= set(eval_rows.column_names)
    return Rows(eval_rows, eval_rows if readable else None,
                " (the deployed version was stored by an older sqlml, which did not sign its training query, so which "
                "rows it held out is not recomputed: it may have been trained on some of them)")


def guarded(compare: t.Callable[[], Verdict]) -> Verdict:
    """``compare``'s verdict; when the deployed version cannot score the current rows (a feature whose
    type changed, a table its training query read is gone), the new version is stored, not deployed,
    and the line says why. A registry that does not verify still refuses the statement."""
    try:
        return compare()
    except SqlmlError as e:
        if not isinstance(e, DataError) and type(e) is not SqlmlError:  # bad options, a registry that does not verify
            raise
        return Verdict(False, f"the deployed version cannot be scored on the current rows ({e.__class__.__name__}: "
                       f"{str(e).rstrip('.')}), so the two cannot be compared")


def incomparable(new: LoadedModel, deployed: LoadedModel) -> str | None:
    """Why the new version cannot be compared with the deployed one on one metric, or None: another task,
    another label, label type or classes (CREATE OR REPLACE MODEL with another model type, or a label
    whose type changed)."""
    if new.kind.task != deployed.kind.task:
        return (f"it is a {new.kind.task} model ({new.kind.name}) and the deployed version a {deployed.kind.task} model "
                f"({deployed.kind.name}): a different task cannot be compared")
    if new.label != deployed.label:
        return f"it predicts '{new.label}' and the deployed version '{deployed.label}': other labels cannot be compared"
    if new.label_type != deployed.label_type:
        return (f"its label '{new.label}' is {new.label_type} and the deployed version's {deployed.label_type}: labels "
                "of another type cannot be compared")
    if new.classes is not None and deployed.classes is not None \
            and sorted(map(str, new.classes)) != sorted(map(str, deployed.classes)):
        return (f"it predicts the classes {', '.join(map(str, new.classes))} and the deployed version "
                f"{', '.join(map(str, deployed.classes))}: other classes cannot be compared on one metric")
    return None


def _labelled(model: LoadedModel, table: pa.Table) -> pa.Table:
    return table if model.label is None else prepare_label(table, model.label, model.kind)[0]


def _kept(new: pa.Table, deployed: pa.Table, held: np.ndarray | None) -> Rows:
    if held is None:
        return Rows(new, deployed, " (the deployed version held no rows out of its training, so it may have been "
                                   "trained on some of them)")
    keep = pa.array(held)
    return Rows(new.filter(keep), deployed.filter(keep))


def decide(options: dict, new: LoadedModel, deployed: LoadedModel | None, rows: Rows,
           on_training_rows: bool) -> Verdict:
    """Whether ``new`` replaces ``deployed``, and the one sentence that says why."""
    mode = options.get("deploy", "if_not_worse")
    if deployed is None:
        return Verdict(True, "the first version of a model is deployed")
    if mode == "always":
        return Verdict(True, "deploy = 'always'")
    if mode == "never":
        return Verdict(False, "deploy = 'never': stored for comparison only")
    why = incomparable(new, deployed)
    if why is not None:
        remedy = None if new.label == deployed.label else (
            "retrain it with deploy = 'always' to replace the model (as BigQuery does), or train it as another model")
        return Verdict(False, f"{why}, so deploy = 'if_not_worse' does not deploy it", remedy=remedy)
    metric = primary_metric(new, options.get("primary_metric"))
    if rows.deployed is None:
        return Verdict(False, "the deployed version reads columns the new training query does not select, and its "
                       "own training query returns other rows, so the two cannot be scored on the same rows", metric)
    if rows.new.num_rows == 0:
        return Verdict(False, "no held-out row of the new version was held out by the deployed version too "
                       "(their splits differ: data_split_method, data_split_eval_fraction, random_seed)", metric)
    new_value, old_value = score(new, rows.new, metric), score(deployed, rows.deployed, metric)
    tolerance = options.get("deploy_tolerance", 0.0)
    lower = metrics.lower_is_better(metric)
    not_worse = new_value <= old_value + tolerance if lower else new_value >= old_value - tolerance
    beats = beats_baseline(new, rows.new, metric, new_value)
    count = rows.new.num_rows
    where = f"{count:,} {'training (no evaluation split)' if on_training_rows else 'held-out'} rows{rows.caveat}"
    verdict = "not worse than" if not_worse else "worse than"
    reason = (f"{metric} {new_value:.4g} vs {old_value:.4g} for the deployed version on the same {where}: "
              f"{verdict} it (tolerance {tolerance:g})" + ("" if beats else ", and it does not beat its baseline"))
    better, said = True, ""
    if options.get("deploy_significance") is not None and not_worse and beats:
        better, said = significantly_better(new, deployed, rows, metric, options["deploy_significance"])
    return Verdict(not_worse and beats and better, reason + said, metric, new_value, old_value, count)


def significantly_better(new: LoadedModel, deployed: LoadedModel, rows: Rows, metric: str,
                         significance: float) -> tuple[bool, str]:
    """``deploy_significance``: whether the new version is better than the deployed one with the
    paired bootstrap of ML.COMPARE (:mod:`sqlml.model.bootstrap`, seed 0, :data:`BOOTSTRAP_RESAMPLES`
    resamples): its (1 − significance) interval of new − deployed lies wholly on the better side of 0."""
    if not new.kind.supervised:
        raise OptionError(f"deploy_significance compares labelled predictions row by row; a {new.kind.name} model "
                          "has none. Leave it out (the gate still compares the two versions).")
    drawn = bootstrap.differences(Scored.of(new, rows.new), Scored.of(deployed, rows.deployed), [metric],
                                  BOOTSTRAP_RESAMPLES, 0)[metric]
    found = bootstrap.interval(drawn, 1 - significance)
    if found is None:
        return False, f"; {metric} is undefined on every bootstrap resample, so it is not significantly better"
    better = found.high < 0 if metrics.lower_is_better(metric) else found.low > 0
    return better, (f"; new − deployed {100 * (1 - significance):g} % interval [{found.low:.4g}, {found.high:.4g}], "
                    f"p = {found.p_value:.3g}: {'' if better else 'not '}significantly better "
                    f"(deploy_significance {significance:g})")


def score(model: LoadedModel, rows: pa.Table, metric: str) -> float:
    value = metrics.finite(metrics.evaluate(model, rows).get(metric))
    if value is None:
        raise OptionError(f"The deploy gate's metric {metric} is undefined on these evaluation rows (one class?); "
                          "choose another primary_metric, or deploy = 'always'.")
    return value


def beats_baseline(model: LoadedModel, rows: pa.Table, metric: str, value: float) -> bool:
    if model.kind.task in UNSUPERVISED:
        return True
    if model.kind.task == RECOMMENDATION:  # its baseline is kept in its bytes
        baseline = metrics.finite(metrics.recommendation_metrics(model, rows, baseline=True).get(metric))
    else:
        labelled = metrics.labelled_rows(model, rows)
        baseline = metric_values(Baseline.of(model).on(metrics.true_labels(model, labelled))).get(metric)
    if baseline is None:
        return True
    return value < baseline if metrics.lower_is_better(metric) else value > baseline
