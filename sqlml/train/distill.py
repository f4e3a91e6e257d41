"""Distillation: a cheaper student model trained on a teacher model's predictions.

``CREATE MODEL student OPTIONS (model_type = 'logistic_reg', distill_from = 'teacher') AS SELECT
<features> FROM rows`` needs no label: the teacher scores the rows and its predictions are the labels.

* A classifier student learns the teacher's confidence, not only its decisions: each row is taken
  once per class, labelled with the class and weighted with the teacher's probability of it. The
  weighted log loss of those rows is the cross-entropy against the teacher's probabilities (soft
  labels), so a logistic student fits them exactly as a soft-label fit would.
* A regressor student fits the teacher's values.
* Rows are split as CREATE MODEL splits them (``data_split_method``), before they are repeated per
  class, so a row's copies stay on one side. The evaluation rows carry the teacher's decided label:
  the student's stored accuracy (r² for regressors) is its agreement with the teacher on rows it did
  not train on, reported as ``teacher_agreement``; ML.EVALUATE with data reports it on those rows.

The teacher is the version deployed when the student is trained, unless ``distill_from_version``
names one; that version is recorded in the student's options. After training, both score the training
rows (ML.PREDICT's path) and the speed-up is reported and kept in the training notes (model card).
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import OptionError
from ..model.kinds import CLASSIFICATION, ModelKind
from ..model.loaded import LoadedModel
from . import search
from .split import Split, split_rows

WEIGHT = "__sqlml_teacher_probability"  # the instance weight column of a classifier student's rows
#: Options a student cannot take: the teacher's predictions decide the labels and the weights.
EXCLUSIVE = ("input_label_cols", "instance_weight_col", "auto_class_weights", "class_weights", "sampling")
AGREEMENT = "teacher_agreement"  # ML.EVALUATE's column
NOTE = "Distilled from "  # how the training note begins (the model card lists it as what training did)
TIMING_ROUNDS = 3


@dataclass
class Lesson:
    """What the student trains on: the rows with the teacher's labels (and weights), the options to train
    with, and the split of those rows."""

    rows: pa.Table
    options: dict
    split: Split
    features: pa.Table  # the rows as the query gave them, once each (to time scoring on)
    decided: pa.Table  # those rows with the teacher's decided label, which ``split`` came from (the deploy gate's)
    held_out: bool  # whether the student is evaluated on rows it did not train on


def check(kind: ModelKind, options: dict, transform: bool) -> None:
    """Refuse, before reading any data, what distillation cannot combine with."""
    if not kind.supervised:
        raise OptionError(f"distill_from needs a classifier or regressor student; model_type '{kind.name}' learns "
                          "no label.")
    given = [name for name in EXCLUSIVE if name in options] + (["tuning"] if search.wanted(options) else [])
    if given:
        raise OptionError(f"distill_from cannot be combined with {', '.join(given)}: the teacher's predictions are "
                          "the student's labels and weights.")
    if transform:
        raise OptionError("distill_from cannot be combined with a TRANSFORM clause yet: the student reads the "
                          "query's columns as they are.")


def check_teacher(teacher: LoadedModel, kind: ModelKind) -> None:
    """Refuse, before it scores any row, a teacher the student cannot learn from."""
    if teacher.kind.task != kind.task:
        raise OptionError(f"A {kind.name} student cannot learn from '{teacher.info.name}', a {teacher.kind.name}: "
                          f"distill a {teacher.kind.task} model into a {kind.task} model.")
    if teacher.transform:
        raise OptionError(f"'{teacher.info.name}' has a TRANSFORM clause; distill_from needs a teacher that reads the "
                          "query's columns as they are (not supported yet).")


def lesson(teacher: LoadedModel, scored: pa.Table, kind: ModelKind, options: dict) -> Lesson:
    """The student's training rows from ``scored``: ML.PREDICT of the teacher (checked by
    :func:`check_teacher`) over the student's query (prediction columns first, then the query's columns)."""
    label = teacher.label
    predicted = scored.column_names[:2 if kind.task == CLASSIFICATION else 1]
    features = scored.drop_columns(predicted + ([label] if label in scored.column_names else []))
    decided = features.append_column(label, scored[predicted[0]])
    split = split_rows(decided, options, options.get("random_seed"))
    student = {**options, "input_label_cols": [label], "distill_from_version": teacher.info.version}
    if kind.task != CLASSIFICATION:
        return Lesson(decided, student, split, features, decided, split.eval is not None)
    train = _per_class(features, scored[predicted[1]], split.train, teacher)
    # Evaluated on the teacher's decided labels: the held-out rows, or without a split every row once.
    evaluated = split.eval if split.eval is not None else split.train
    held_out = decided.take(evaluated).append_column(WEIGHT, pa.array(np.ones(len(evaluated))))
    positions = np.arange(train.num_rows + held_out.num_rows)
    lesson_split = Split(positions[:train.num_rows], positions[train.num_rows:], split.fraction)
    return Lesson(pa.concat_tables([train, held_out]), {**student, "instance_weight_col": WEIGHT}, lesson_split,
                  features, decided, split.eval is not None)


def _per_class(features: pa.Table, probabilities: pa.ChunkedArray, rows: np.ndarray, teacher: LoadedModel) -> pa.Table:
    """Each of ``rows`` once per class the teacher gives a probability above zero: labelled with the
    class, weighted with that probability."""
    flat = pc.list_flatten(probabilities.combine_chunks()).field("prob")
    probs = np.asarray(flat).reshape(-1, len(teacher.classes))[rows]
    row_index, class_index = np.nonzero(probs > 0)
    table = features.take(rows[row_index])
    classes = pa.array(teacher.classes, type=teacher.label_type).take(pa.array(class_index))
    return table.append_column(teacher.label, classes).append_column(WEIGHT, pa.array(probs[row_index, class_index]))


def speedup(teacher: LoadedModel, student: LoadedModel, rows: pa.Table) -> float:
    """How many times faster the student scores ``rows`` than the teacher, ML.PREDICT's path (best of a few)."""
    def best(model: LoadedModel) -> float:
        times = []
        for _ in range(TIMING_ROUNDS):
            started = time.perf_counter()
            model.predict(rows)
            times.append(time.perf_counter() - started)
        return min(times)
    return best(teacher) / best(student)


def report(row: dict, teacher: LoadedModel, student: LoadedModel, lesson: Lesson,
           progress: t.Callable[[str], None]) -> None:
    """Record in the student's registry ``row`` its agreement with the teacher on the held-out rows and its
    scoring speed-up, also said through ``progress``."""
    metrics = row["metrics"]
    agreement = metrics.get("accuracy", metrics.get("r2_score"))
    metrics[AGREEMENT] = agreement
    ratio = speedup(teacher, student, lesson.features)
    agreed = f"agrees with it on {agreement:.1%} of" if "accuracy" in metrics else \
        f"has r² {agreement:.4f} against it on"
    rows = "the held-out rows" if lesson.held_out else "its training rows (no evaluation split)"
    note = (f"{NOTE}'{teacher.info.name}' version {teacher.info.version}: scores the {lesson.features.num_rows:,} rows "
            f"of its training query {ratio:.1f}× as fast as the teacher (ML.PREDICT's path); {agreed} {rows}.")
    for info in row["training_info"]:
        info["notes"] = "; ".join(n for n in (info.get("notes"), note) if n)
    progress(note)


def agreement(student: LoadedModel, teacher: LoadedModel, tables: t.Iterable[pa.Table]) -> float | None:
    """ML.EVALUATE's ``teacher_agreement`` on rows: the share of rows where both predict the same label,
    or (regressors) r² of the student's values against the teacher's."""
    same, total, squared, deviations = 0, 0, [], []
    for table in tables:
        if table.num_rows == 0:
            continue
        if student.kind.task == CLASSIFICATION:
            mine, theirs = student.predict(table).column(0), teacher.predict(table).column(0)
            same += pc.sum(pc.equal(mine, theirs)).as_py() or 0
            total += table.num_rows
        else:
            mine, theirs = student.regression_values(table), teacher.regression_values(table)
            squared.append(mine - theirs)
            deviations.append(theirs)
    if student.kind.task == CLASSIFICATION:
        return same / total if total else None
    if not deviations:
        return None
    theirs = np.concatenate(deviations)
    residual, spread = float(np.sum(np.concatenate(squared) ** 2)), float(np.sum((theirs - theirs.mean()) ** 2))
    return 1.0 - residual / spread if spread else None
