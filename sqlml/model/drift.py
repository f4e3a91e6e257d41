"""Column statistics and the distances between them, as TensorFlow Data Validation (which BigQuery's
ML.VALIDATE_DATA_DRIFT and ML.VALIDATE_DATA_SKEW follow) computes them; docs/monitoring_drift.md
states the rules.

A column's statistics are plain JSON (they are stored in a model's signed header at CREATE MODEL):

* categorical (strings, booleans, dates, times): ``{"kind": "categorical", "values": [...], "counts": [...]}``,
  the ``rank`` most frequent non-NULL values (TFDV's rank histogram; ties in value order);
* numeric: ``{"kind": "numeric", "edges": [...], "counts": [...], "nan": n, "-inf": n, "+inf": n}``,
  ``buckets`` equal-width buckets over the column's own finite [min, max] (``numpy.histogram``'s: each
  bucket [low, high), the last one closed); a column whose finite values are all equal has one point
  bucket, edges ``[v, v]``. NULLs are in neither. A range wider than the largest double (-1e308 to
  1e308) is cut without computing its width.

Other types (INTERVAL, BLOB, BIT, nested LIST and STRUCT) have no statistics: :func:`kind_of` says None.

They are computed from record batches in two passes (ranges and value counts, then histograms), so
no input is held in memory whole.
"""

from __future__ import annotations

import math
import typing as t
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .preprocess import scalar_kind, to_float64

Batches = t.Callable[[], t.Iterator[pa.RecordBatch]]
L_INFTY, JSD = "L_INFTY", "JENSEN_SHANNON_DIVERGENCE"
NUM_BUCKETS, NUM_RANK = 10, 50  # BigQuery's num_histogram_buckets and num_rank_histogram_buckets


def kind_of(dtype: pa.DataType) -> str | None:
    """'numeric' for numbers, 'categorical' for strings, booleans, dates, times and timestamps (compared as
    their text, so 'infinity' is a value like any other), None for other types (an INTERVAL has months,
    days and nanoseconds that no one order or text compares)."""
    kind = scalar_kind(dtype)
    if kind == "numeric":
        return kind
    moment = pa.types.is_date(dtype) or pa.types.is_time(dtype) or pa.types.is_timestamp(dtype)
    return "categorical" if kind in ("categorical", "null") or moment else None


def comparable(schema: pa.Schema, excluded: t.Iterable[str | None] = ()) -> dict[str, str]:
    """{column: kind} of the columns of ``schema`` that have statistics (not ``excluded``)."""
    skip = set(excluded)
    return {f.name: kind_of(f.type) for f in schema if f.name not in skip and kind_of(f.type) is not None}


def statistics(batches: Batches, kinds: dict[str, str], buckets: int = NUM_BUCKETS,
               rank: int = NUM_RANK) -> dict[str, dict]:
    """The statistics of the columns ``kinds`` names ({name: 'numeric' | 'categorical'}) over ``batches``."""
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    counts: dict[str, Counter] = {c: Counter() for c, k in kinds.items() if k == "categorical"}
    ranges = {c: [np.inf, -np.inf, 0, 0, 0] for c in numeric}  # min, max, nan, -inf, +inf
    for batch in batches():
        for name in counts:
            _count(counts[name], batch.column(name))
        for name in numeric:
            _widen(ranges[name], _floats(batch, name))
    stats = {name: _top(counter, rank) for name, counter in counts.items()}
    stats.update(_histograms(batches, ranges, buckets))
    return {name: stats[name] for name in kinds}


def aggregated(aggregates: t.Any, kinds: dict[str, str], buckets: int = NUM_BUCKETS,
               rank: int = NUM_RANK) -> dict[str, dict]:
    """:func:`statistics` from ``aggregates`` an engine computes where the rows are (Spark's executors;
    :class:`sqlml.engines.base.ColumnAggregates`): the same figures, values counted as the same text,
    the same edges, each bucket counted as ``numpy.histogram`` counts it."""
    stats = {}
    for name in (c for c, k in kinds.items() if k == "categorical"):
        top, counter = aggregates.top_values(name, rank), Counter()
        for value, count in zip(pc.cast(top["value"], pa.string()).to_pylist(), top["count"].to_pylist()):
            counter[value] += count
        stats[name] = _top(counter, rank)
    ranges = aggregates.ranges([c for c, k in kinds.items() if k == "numeric"])
    stats.update(_bucketed({name: [np.inf if low is None else low, -np.inf if high is None else high, *rest]
                            for name, (low, high, *rest) in ranges.items()}, buckets))
    ranged = {name: s["edges"] for name, s in stats.items() if s["kind"] == "numeric" and s["edges"]}
    for name, counts in (aggregates.bucket_counts(ranged) if ranged else {}).items():
        stats[name]["counts"] = counts
    return {name: stats[name] for name in kinds}


def _count(counter: Counter, column: pa.Array) -> None:
    """Add the non-NULL values of ``column``, as text, to ``counter``; a dictionary-encoded column by
    counting its indices (no text per row)."""
    if pa.types.is_dictionary(column.type):
        found = np.bincount(column.indices.drop_null().to_numpy(zero_copy_only=False), minlength=len(column.dictionary))
        for value, count in zip(pc.cast(column.dictionary, pa.string()).to_pylist(), found.tolist()):
            if count and value is not None:
                counter[value] += count
        return
    for item in pc.value_counts(pc.cast(column, pa.string()).drop_null()).to_pylist():
        counter[item["values"]] += item["counts"]


def _floats(batch: pa.RecordBatch, name: str) -> np.ndarray:
    return to_float64(batch.column(name)).drop_null().to_numpy(zero_copy_only=False)


def _widen(acc: list, values: np.ndarray) -> None:
    nan = np.isnan(values)
    acc[2] += int(nan.sum())
    acc[3] += int((values == -np.inf).sum())
    acc[4] += int((values == np.inf).sum())
    finite = values[np.isfinite(values)]
    if len(finite):
        acc[0], acc[1] = min(acc[0], float(finite.min())), max(acc[1], float(finite.max()))


def _top(counter: Counter, rank: int) -> dict:
    ranked = sorted(counter.items(), key=lambda vc: (-vc[1], vc[0]))[:rank]
    return {"kind": "categorical", "values": [v for v, _ in ranked], "counts": [c for _, c in ranked]}


def _bucketed(ranges: dict[str, list], buckets: int) -> dict[str, dict]:
    """Each numeric column's histogram edges over its own finite range, its counts still zero."""
    stats = {}
    for name, (low, high, nan, minus, plus) in ranges.items():
        edges = [] if low > high else [low, high] if low == high else equal_width(low, high, buckets)
        stats[name] = {"kind": "numeric", "edges": edges, "counts": [0] * max(len(edges) - 1, 0),
                       "nan": nan, "-inf": minus, "+inf": plus}
    return stats


def _histograms(batches: Batches, ranges: dict[str, list], buckets: int) -> dict[str, dict]:
    """Second pass: each numeric column's equal-width histogram over its own finite range."""
    stats = _bucketed(ranges, buckets)
    ranged = [name for name, s in stats.items() if s["edges"]]
    if not ranged:
        return stats
    for batch in batches():
        for name in ranged:
            values = _floats(batch, name)
            edges = stats[name]["edges"]
            values = values[np.isfinite(values)]
            if edges[0] == edges[-1]:
                stats[name]["counts"][0] += len(values)
                continue
            found, _ = (np.histogram(values, bins=len(edges) - 1, range=(edges[0], edges[-1]))
                        if np.isfinite(edges[-1] - edges[0]) else np.histogram(values, bins=np.asarray(edges)))
            stats[name]["counts"] = (np.asarray(stats[name]["counts"]) + found).tolist()
    return stats


def equal_width(low: float, high: float, buckets: int) -> list[float]:
    """``buckets + 1`` equally spaced edges from ``low`` to ``high`` (``numpy.linspace``'s), also when
    ``high - low`` overflows a double (-1e308 to 1e308): then each edge is a weighted mean of the ends."""
    if np.isfinite(high - low):
        return np.linspace(low, high, buckets + 1).tolist()
    share = np.arange(buckets + 1) / buckets
    edges = low * (1 - share) + high * share
    edges[0], edges[-1] = low, high
    return edges.tolist()


def present(stats: dict) -> int:
    """How many non-NULL values the statistics describe."""
    extra = stats["nan"] + stats["-inf"] + stats["+inf"] if stats["kind"] == "numeric" else 0
    return int(sum(stats["counts"])) + extra


def distance(base: dict, study: dict, metric: str) -> float | None:
    """``metric`` (L_INFTY or JENSEN_SHANNON_DIVERGENCE) between two columns' statistics; None when either
    side has no values."""
    if not present(base) or not present(study):
        return None
    if base["kind"] == "categorical":
        p, q = _category_masses(base, study)
        return float(np.abs(p / p.sum() - q / q.sum()).max()) if metric == L_INFTY else jensen_shannon(p, q)
    return jensen_shannon(*aligned(base, study))


def _category_masses(base: dict, study: dict) -> tuple[np.ndarray, np.ndarray]:
    values = sorted(set(base["values"]) | set(study["values"]))
    mine, theirs = dict(zip(base["values"], base["counts"])), dict(zip(study["values"], study["counts"]))
    return (np.array([mine.get(v, 0) for v in values], dtype=float),
            np.array([theirs.get(v, 0) for v in values], dtype=float))


def aligned(base: dict, study: dict) -> tuple[np.ndarray, np.ndarray]:
    """Both histograms' masses over the same buckets: the range buckets re-cut at the union of both
    sides' edges (a bucket's count spread uniformly over its width), then one bucket per point value,
    then NaN, -inf and +inf."""
    sides = (base, study)
    union = np.unique(np.concatenate([s["edges"] for s in sides if _spans(s)] or [[]]))
    points = sorted({s["edges"][0] for s in sides if _point(s)})
    out = []
    for s in sides:
        cut = np.zeros(max(len(union) - 1, 0))
        if _spans(s):
            cumulative = np.concatenate([[0.0], np.cumsum(s["counts"], dtype=float)])
            # Interpolation is scale-free: scaled, no width between edges overflows (-1e308 to 1e308).
            scale = 1.0 if math.isfinite(float(union[-1]) - float(union[0])) else float(np.abs(union).max())
            cut = np.diff(np.interp(union / scale, np.asarray(s["edges"]) / scale, cumulative))
        point = [float(s["counts"][0]) if _point(s) and s["edges"][0] == v else 0.0 for v in points]
        out.append(np.concatenate([cut, point, [s["nan"], s["-inf"], s["+inf"]]]).astype(float))
    return out[0], out[1]


def _spans(stats: dict) -> bool:
    return len(stats["edges"]) > 1 and stats["edges"][0] < stats["edges"][-1]


def _point(stats: dict) -> bool:
    return len(stats["edges"]) == 2 and stats["edges"][0] == stats["edges"][1]


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in base 2 of the normalized masses ``p`` and ``q``, capped at 1 (TFDV's)."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    total = sum(float(np.sum(x[x > 0] * np.log2(x[x > 0] / m[x > 0]))) for x in (p, q))
    return min(max(total / 2, 0.0), 1.0)
