"""Distillation: a student trained on a teacher's predictions (its probabilities for classifiers) agrees with
it, reports that agreement, scores faster, and is refused where it cannot be trained."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import r2_score

import sqlml
from sqlml import datasets
from sqlml.errors import ModelNotFoundError, OptionError

HELD_OUT = "SELECT * FROM flights WHERE month > 9"


@pytest.fixture(scope="module")
def distilled():
    """A boosted flights teacher, trained on January to September, and a logistic student distilled from it
    on the same months without their label (the flights of conftest's fixture; trained once for the module)."""
    conn = sqlml.connect(progress=lambda message: None)
    datasets.load(conn.duckdb, "flights", "all_flights")
    conn.sql("""CREATE TABLE flights AS
        SELECT month, day, dep_delay, sched_dep_time, distance, hour, carrier, origin, dest, arr_delay > 15 AS is_late
        FROM all_flights WHERE arr_delay IS NOT NULL AND day IN (1, 15)
        ORDER BY year, month, day, sched_dep_time, carrier, flight""")
    conn.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['is_late'], "
             "max_iterations = 30, max_tree_depth = 5) AS SELECT * FROM flights WHERE month <= 9")
    messages = []
    conn.executor.progress = messages.append
    conn.sql("CREATE MODEL student OPTIONS (model_type = 'logistic_reg', distill_from = 'teacher') "
             "AS SELECT * EXCLUDE (is_late) FROM flights WHERE month <= 9")
    yield conn, messages
    conn.close()


def _labels(conn, model: str, query: str) -> np.ndarray:
    return conn.sql(f"SELECT predicted_is_late FROM ML.PREDICT(MODEL {model}, ({query}))").fetchnumpy()["predicted_is_late"]


def test_a_logistic_student_agrees_with_its_boosted_teacher_on_held_out_rows(distilled):
    conn, _ = distilled
    agreement = float(np.mean(_labels(conn, "student", HELD_OUT) == _labels(conn, "teacher", HELD_OUT)))
    assert agreement >= 0.95
    evaluated = conn.sql(f"SELECT teacher_agreement, accuracy FROM ML.EVALUATE(MODEL student, ({HELD_OUT}))").fetchall()
    assert evaluated[0][0] == pytest.approx(agreement, abs=1e-12)
    # The usual metrics are the student's against the true labels, beside the agreement.
    truth = conn.sql(HELD_OUT).fetchnumpy()["is_late"]
    assert evaluated[0][1] == pytest.approx(float(np.mean(_labels(conn, "student", HELD_OUT) == truth)), abs=1e-12)


def test_the_stored_agreement_is_the_students_accuracy_on_the_teachers_held_out_labels(distilled):
    conn, messages = distilled
    ((stored, accuracy),) = conn.sql("SELECT teacher_agreement, accuracy FROM ML.EVALUATE(MODEL student)").fetchall()
    assert stored == accuracy
    options = conn.executor.load("student").info.options
    assert options["distill_from"] == "teacher" and options["distill_from_version"] == 1
    note = next(m for m in messages if m.startswith("Distilled from 'teacher' version 1: scores the "))
    assert f"agrees with it on {stored:.1%} of the held-out rows" in note
    ratio = float(note.split(" training query ")[1].split("×")[0])
    assert ratio > 1.0
    ((notes,),) = conn.sql("SELECT notes FROM ML.TRAINING_INFO(MODEL student) LIMIT 1").fetchall()
    assert note in notes
    ((card,),) = conn.sql("SELECT model_card FROM ML.MODEL_CARD(MODEL student)").fetchall()
    assert note in card


def test_the_students_compiled_sql_scores_faster_than_the_teachers_path(distilled):
    conn, _ = distilled
    conn.sql("CREATE OR REPLACE TABLE many AS SELECT * EXCLUDE (is_late) FROM flights, range(5)")
    ((compiled,),) = conn.sql("SELECT sql FROM ML.GENERATE_SQL(MODEL student, TABLE many)").fetchall()

    def best(run) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return min(times)
    student = best(lambda: conn.duckdb.sql(f"CREATE OR REPLACE TABLE by_student AS {compiled}"))
    teacher = best(lambda: conn.sql("CREATE OR REPLACE TABLE by_teacher AS SELECT * FROM ML.PREDICT(MODEL teacher, TABLE many)"))
    assert student < teacher
    assert conn.duckdb.sql("SELECT count(*) FROM by_student").fetchall() == [(5 * conn.sql("SELECT count(*) FROM flights").fetchall()[0][0],)]


def test_a_student_learns_the_teachers_probabilities_not_only_its_labels(penguins):
    """Fitted on every row once per class, weighted with the teacher's probability of it, a logistic student's
    unpenalized intercepts make its mean probability of each class the teacher's on its training rows; and it is
    as unsure as its (deliberately soft) teacher, where a student of the teacher's labels is sure."""
    penguins.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'], "
                 "max_iterations = 5, learn_rate = 0.1) AS SELECT * FROM penguins")
    penguins.sql("CREATE MODEL student OPTIONS (model_type = 'logistic_reg', distill_from = 'teacher', "
                 "data_split_method = 'NO_SPLIT', early_stop = FALSE) AS SELECT * EXCLUDE (species) FROM penguins")
    penguins.sql("CREATE TABLE labelled AS SELECT * EXCLUDE (predicted_species_probs, species) "
                 "RENAME (predicted_species AS species) FROM ML.PREDICT(MODEL teacher, TABLE penguins)")
    penguins.sql("CREATE MODEL by_labels OPTIONS (model_type = 'logistic_reg', input_label_cols = ['species'], "
                 "data_split_method = 'NO_SPLIT', early_stop = FALSE) AS SELECT * FROM labelled")

    def probabilities(model: str) -> np.ndarray:
        rows = penguins.sql(f"SELECT predicted_species_probs FROM ML.PREDICT(MODEL {model}, TABLE penguins)").fetchall()
        return np.array([[entry["prob"] for entry in probs] for (probs,) in rows])
    teacher, student, by_labels = probabilities("teacher"), probabilities("student"), probabilities("by_labels")
    np.testing.assert_allclose(student.mean(axis=0), teacher.mean(axis=0), atol=2e-3)
    assert abs(student.max(axis=1).mean() - teacher.max(axis=1).mean()) < 0.05 < teacher.max(axis=1).mean() - 0.5
    assert by_labels.max(axis=1).mean() > teacher.max(axis=1).mean() + 0.2


def test_a_regressor_student_reports_r2_against_its_teacher(penguins):
    penguins.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_regressor', input_label_cols = ['body_mass_g'], "
                 "max_iterations = 10) AS SELECT * FROM penguins WHERE body_mass_g IS NOT NULL")
    penguins.sql("CREATE MODEL student OPTIONS (model_type = 'linear_reg', distill_from = 'teacher') "
                 "AS SELECT * EXCLUDE (body_mass_g) FROM penguins")
    rows = "SELECT * FROM penguins WHERE body_mass_g IS NOT NULL"
    values = {m: penguins.sql(f"SELECT predicted_body_mass_g FROM ML.PREDICT(MODEL {m}, ({rows}))").fetchnumpy()
              ["predicted_body_mass_g"] for m in ("teacher", "student")}
    ((agreement,),) = penguins.sql(f"SELECT teacher_agreement FROM ML.EVALUATE(MODEL student, ({rows}))").fetchall()
    assert agreement == pytest.approx(r2_score(values["teacher"], values["student"]), abs=1e-9)


@pytest.mark.parametrize("options, message", [
    ("model_type = 'kmeans', distill_from = 'teacher'", "Option 'distill_from' does not apply to model_type 'kmeans'"),
    ("model_type = 'logistic_reg', distill_from = 'teacher', input_label_cols = ['sex']",
     "distill_from cannot be combined with input_label_cols: the teacher's predictions are the student's labels"),
    ("model_type = 'linear_reg', distill_from = 'teacher'",
     "A linear_reg student cannot learn from 'teacher', a boosted_tree_classifier: distill a classification model "
     "into a regression model"),
    ("model_type = 'logistic_reg', distill_from = 'nobody'", "nobody"),
])
def test_what_cannot_be_distilled_is_refused(penguins, options, message):
    penguins.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'], "
                 "max_iterations = 3) AS SELECT * FROM penguins")
    error = ModelNotFoundError if "nobody" in options else OptionError
    with pytest.raises(error, match=message.replace("(", r"\(")):
        penguins.sql(f"CREATE MODEL student OPTIONS ({options}) AS SELECT * EXCLUDE (species) FROM penguins")


def test_a_student_with_a_transform_is_refused(penguins):
    penguins.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'], "
                 "max_iterations = 3) AS SELECT * FROM penguins")
    with pytest.raises(OptionError, match="distill_from cannot be combined with a TRANSFORM clause yet"):
        penguins.sql("CREATE MODEL student TRANSFORM (island, sex) OPTIONS (model_type = 'logistic_reg', "
                     "distill_from = 'teacher') AS SELECT * EXCLUDE (species) FROM penguins")


def test_a_teacher_of_another_task_is_refused_before_it_scores(penguins, monkeypatch):
    """A PCA (or matrix factorization) predicts no label a student could learn: refused before any row is scored."""
    penguins.sql("CREATE MODEL reducer OPTIONS (model_type = 'pca', num_principal_components = 2) AS "
                 "SELECT bill_length_mm, bill_depth_mm, flipper_length_mm FROM penguins")
    monkeypatch.setattr(penguins.executor, "compute", lambda *args: pytest.fail("the teacher scored rows"))
    with pytest.raises(OptionError, match="A logistic_reg student cannot learn from 'reducer', a pca: distill a "
                                          "dimensionality_reduction model into a classification model"):
        penguins.sql("CREATE MODEL student OPTIONS (model_type = 'logistic_reg', distill_from = 'reducer') "
                     "AS SELECT bill_length_mm, bill_depth_mm, flipper_length_mm FROM penguins")


@pytest.mark.parametrize("split", ["NO_SPLIT", "RANDOM"])
def test_a_retrained_student_goes_through_the_deploy_gate_on_rows_both_versions_read(penguins, split):
    penguins.sql("CREATE MODEL teacher OPTIONS (model_type = 'boosted_tree_classifier', input_label_cols = ['species'], "
                 "max_iterations = 5) AS SELECT * FROM penguins")
    messages = []
    penguins.executor.progress = messages.append
    for _ in range(2):
        penguins.sql(f"CREATE OR REPLACE MODEL student OPTIONS (model_type = 'logistic_reg', distill_from = 'teacher', "
                     f"data_split_method = '{split}') AS SELECT * EXCLUDE (species) FROM penguins")
    verdict = next(m for m in messages if m.startswith("Model 'student' version 2 "))
    assert verdict.startswith("Model 'student' version 2 deployed: log_loss ") and "for the deployed version on the same" \
        in verdict
