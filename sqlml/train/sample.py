"""Training on part of the training split: ``max_training_rows`` and ``sample_fraction``.

Only the training rows are sampled; the evaluation split stays whole so metrics stay comparable.
Classifiers sample each class in proportion (stratified), so class shares are kept to within one
row per class; the draw is seeded by ``random_seed`` (``DATA_SEED`` without it).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import OptionError
from .labels import label_codes

#: Seeds every choice of rows (the evaluation split, sampled training rows) when ``random_seed`` is not
#: given: the same data is divided the same way every time, so versions of a model, and a challenger
#: against its champion, are evaluated on the same rows. ``random_seed`` also seeds the estimator.
DATA_SEED = 0


def sample_size(available: int, options: dict) -> int | None:
    """How many training rows to keep, or None to keep them all."""
    wanted = []
    if "sample_fraction" in options:
        wanted.append(max(1, int(round(available * options["sample_fraction"]))))
    if "max_training_rows" in options:
        wanted.append(options["max_training_rows"])
    size = min(wanted) if wanted else None
    return size if size is not None and size < available else None


def stratified(rows: np.ndarray, codes: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` of ``rows``, each class (``codes``) keeping its share: largest-remainder rounding,
    at least one row for every class present."""
    classes, counts = np.unique(codes, return_counts=True)
    if size < len(classes):
        raise OptionError(f"max_training_rows / sample_fraction keep {size} training row(s), fewer than the "
                          f"{len(classes)} classes of the label; keep at least one row per class.")
    exact = counts * size / counts.sum()
    take = np.maximum(np.floor(exact).astype(int), 1)
    for i in np.argsort(-(exact - np.floor(exact))):
        if take.sum() >= size:
            break
        take[i] += 1
    while take.sum() > size:  # the minimum of one per class overshot: trim the largest classes
        take[np.argmax(take)] -= 1
    chosen = [rng.choice(rows[codes == c], n, replace=False) for c, n in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def limit_training_rows(split, table: pa.Table, label: str | None, classes: list | None, options: dict):
    """The split with its training rows sampled down, and a note saying what was kept."""
    size = sample_size(len(split.train), options)
    if size is None:
        return split, []
    rng = np.random.default_rng(options.get("random_seed", DATA_SEED))
    if classes:
        codes = label_codes(table[label].take(pa.array(split.train)), classes)
        rows = stratified(split.train, codes, size, rng)
        how = "stratified by label"
    else:
        rows = np.sort(rng.choice(split.train, size, replace=False))
        how = "uniform"
    note = f"Training on {size:,} of {len(split.train):,} training rows ({how}; max_training_rows / sample_fraction)."
    return type(split)(rows, split.eval), [note]
