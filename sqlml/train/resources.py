"""Memory a fit will need, estimated before it starts, against the memory the process can have.

A fit that cannot finish should fail at once with a message, not after minutes of swapping or with a
``MemoryError`` (or the kernel's OOM killer) halfway. The estimate is deliberately simple: the feature
matrix times a per-family factor (copies and per-row buffers the estimator keeps), plus what the
options make grow (trees of a forest or of boosting, an MLP's weight matrices and optimizer state).
Boosted trees never build the matrix (XGBoost's quantile matrix, filled from the rows a block at a
time, holds a byte per entry): their factor is over the matrix they would have, which is not added.
It errs on the high side for fully grown trees; everything else is within a small factor.
"""

from __future__ import annotations

import itertools
import math
import os
import resource

from ..errors import DataError
from ..model.kinds import AUTOENCODER, BOOSTED, DNN, FOREST, KMEANS, LINEAR, PCA, ModelKind

FLOAT = 8
#: Copies of the feature matrix a fit holds at its peak, beyond the matrix itself: lbfgs' per-row
#: gradient buffers, a bootstrap sample per forest worker, k-means' distance and label buffers, an
#: MLP's batch copies, PCA's centred copy and SVD, an autoencoder's target (a second copy of its input)
#: and reconstruction. Boosted trees: XGBoost's whole fit, from the record batches, measured at 0.72×
#: the dense matrix it never builds (2 M rows × 12 columns, benchmarks/boosted.py); 1.0 leaves room.
MATRIX_FACTOR = {LINEAR: 1.5, BOOSTED: 1.0, FOREST: 1.5, DNN: 1.5, KMEANS: 2.0, PCA: 2.0, AUTOENCODER: 2.5}
NODE_BYTES = 64  # a tree node record (children, feature, threshold, gain or impurity, counts)
ADAM_COPIES = 4  # an MLP keeps each weight matrix, its gradient and Adam's two moment estimates
BATCH_ROWS = 200  # an MLP's default mini-batch
USABLE_SHARE = 0.9  # leave a tenth of what is available to the rest of the process


def fit_bytes(kind: ModelKind, options: dict, rows: int, width: int, classes: int) -> dict[str, int]:
    """The estimated peak bytes of fitting ``kind`` on ``rows`` × ``width`` features, by what needs them."""
    matrix = rows * width * FLOAT
    if kind.xgboost and "sampling" not in options:  # no matrix: the rows go to XGBoost a block at a time
        needs = {"XGBoost's quantile matrix and gradients": int(matrix * MATRIX_FACTOR[kind.family])}
    else:
        needs = {"feature matrix": int(matrix * (1 + MATRIX_FACTOR[kind.family]))}
    outputs = classes if classes > 2 else 1
    if kind.family == FOREST:
        depth_nodes = 2 ** (options["max_tree_depth"] + 1) - 1
        nodes = min(depth_nodes, 2 * math.ceil(0.632 * rows))  # a bootstrap sample holds ~63 % distinct rows
        per_node = NODE_BYTES + FLOAT * max(classes, 1)
        needs["trees"] = options["num_parallel_tree"] * nodes * per_node
    elif kind.family == BOOSTED:
        nodes = min(2 ** (options["max_tree_depth"] + 1) - 1, 2 * rows)
        needs["trees"] = options["max_iterations"] * options["num_parallel_tree"] * outputs * nodes * NODE_BYTES
    elif kind.family in (DNN, AUTOENCODER):  # an autoencoder's output is its input
        layers = [width, *options["hidden_units"], width if kind.reconstructs else outputs]
        weights = sum((a + 1) * b for a, b in itertools.pairwise(layers))
        needs["weights"] = weights * FLOAT * ADAM_COPIES
        needs["activations"] = min(rows, BATCH_ROWS) * sum(layers) * FLOAT * 2
    elif kind.family == KMEANS:
        needs["centroids"] = rows * options["num_clusters"] * FLOAT
    return needs


def available_bytes() -> tuple[int | None, str]:
    """The bytes this process may still allocate, and where the figure comes from: the smaller of the
    memory the kernel reports as available and the room left under an address-space or data rlimit."""
    figures = []
    meminfo = _proc_kib("/proc/meminfo", "MemAvailable")
    if meminfo is not None:
        figures.append((meminfo, "available memory"))
    elif hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        figures.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available memory"))
    for limit, field, name in ((resource.RLIMIT_AS, "VmSize", "the address-space limit (ulimit -v)"),
                               (resource.RLIMIT_DATA, "VmData", "the data-segment limit (ulimit -d)")):
        soft = resource.getrlimit(limit)[0]
        used = _proc_kib("/proc/self/status", field)
        if soft != resource.RLIM_INFINITY and used is not None:
            figures.append((max(0, soft - used), f"room left under {name}"))
    return min(figures) if figures else (None, "unknown")


def _proc_kib(path: str, field: str) -> int | None:
    """A ``Field:  123 kB`` line of a /proc file, in bytes; None where there is no such file."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(kind: ModelKind, options: dict, name: str, rows: int, width: int, classes: int) -> None:
    """Refuse a fit whose estimated peak memory exceeds what the process can have, saying what needs it."""
    needs = fit_bytes(kind, options, rows, width, classes)
    have, source = available_bytes()
    total = sum(needs.values())
    if have is None or total <= USABLE_SHARE * have:
        return
    parts = ", ".join(f"{what} {_gib(n)}" for what, n in needs.items())
    raise DataError(
        f"Training '{name}' ({kind.name}, {rows:,} rows × {width:,} features) would need about {_gib(total)} of "
        f"memory ({parts}), more than the {_gib(have)} this process can use ({source}). Train on fewer rows "
        f"(max_training_rows, sample_fraction), fewer or simpler features, or smaller options "
        f"({_growing_options(kind)}).")


def _growing_options(kind: ModelKind) -> str:
    """The options that make a fit of ``kind`` bigger."""
    return {FOREST: "num_parallel_tree, max_tree_depth", BOOSTED: "max_iterations, max_tree_depth, num_parallel_tree",
            DNN: "hidden_units", AUTOENCODER: "hidden_units", KMEANS: "num_clusters"}.get(kind.family,
                                                                                      "fewer one-hot categories")


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"
