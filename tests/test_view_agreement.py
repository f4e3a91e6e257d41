"""Views serve what ML.PREDICT serves (docs/release.md): the same arm for an A/B split key of every
DuckDB type (one canonical key text, recomputed here without sqlml), the same label type and classes
(a view that cannot show a deployed version's predictions refuses naming itself), and expiry applied
to every version served, the challenger included."""

from __future__ import annotations

import datetime as dt

import pytest

import sqlml
from conftest import same_predictions
from sqlml import datasets
from sqlml.errors import DataError, ModelExpiredError

M64 = 2**64 - 1
FRACTION = 0.4
AB = f"STRUCT({FRACTION} AS challenger_fraction, 'key' AS split_key)"

#: A key column of each type a split key may have, made from the row number n (1 … 344) of penguins.
KEYS = {
    "TINYINT": "(n % 120)::TINYINT", "SMALLINT": "(n * 89 - 16000)::SMALLINT", "INTEGER": "(n * 7919)::INTEGER",
    "BIGINT": "n * 1000003", "UTINYINT": "(n % 250)::UTINYINT", "USMALLINT": "(n * 181)::USMALLINT",
    "UINTEGER": "(n * 104729)::UINTEGER", "UBIGINT": "(n * 4000000007)::UBIGINT",
    "HUGEINT": "n::HUGEINT * 100000000000000000000", "DOUBLE": "n / 7.0", "FLOAT": "(n / 7.0)::FLOAT",
    "DECIMAL": "(n / 7.0)::DECIMAL(12, 4)", "VARCHAR": "'penguin-' || n", "DATE": "DATE '2013-01-01' + n::INTEGER",
    "TIME": "TIME '00:00:00' + to_seconds(n * 151)", "TIMESTAMP": "TIMESTAMP '2013-01-01' + to_seconds(n * 3607)",
    "TIMESTAMPTZ": "TIMESTAMPTZ '2013-01-01 00:00:00+00' + to_seconds(n * 3607)", "BOOLEAN": "n % 3 = 0",
    "UUID": "md5(n::VARCHAR)::UUID", "BLOB": "('\\x' || lpad(to_hex(n), 4, '0'))::BLOB",
    "ENUM": "(['adelie', 'chinstrap', 'gentoo', 'rockhopper', 'emperor'])[n % 5 + 1]::bird",
}


def arm(text: str, fraction: float) -> bool:
    """docs/release.md's arm of a key's canonical text, written without sqlml: FNV-1a 64 of its UTF-8
    bytes, mixed by MurmurHash3's fmix64, below the fraction of the 64-bit range."""
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & M64
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h = ((h ^ (h >> 33)) * multiplier) & M64
    return h ^ (h >> 33) < int(fraction * float(M64))


@pytest.fixture(scope="module")
def ab():
    """Model m on penguins: version 1 deployed, version 2 (Dream left out) aliased challenger; the
    session's time zone is not UTC, so a TIMESTAMPTZ key's text must not depend on it."""
    conn = sqlml.connect(progress=lambda m: None)
    datasets.load(conn.duckdb, "penguins")
    conn.sql("SET TimeZone = 'America/New_York'")
    conn.sql("CREATE TYPE bird AS ENUM ('adelie', 'chinstrap', 'gentoo', 'rockhopper', 'emperor')")
    conn.sql("CREATE TABLE numbered AS SELECT row_number() OVER () AS n, * FROM (SELECT * FROM penguins ORDER BY ALL)")
    for version, where in ((1, "TRUE"), (2, "island <> 'Dream'")):
        conn.sql(f"""CREATE OR REPLACE MODEL m OPTIONS (model_type = 'logistic_reg', input_label_cols = ['sex'],
                     deploy = 'always') AS SELECT island, bill_length_mm, body_mass_g, sex FROM penguins
                     WHERE sex IS NOT NULL AND {where}""")
    conn.sql("ALTER MODEL m DEPLOY VERSION 1")
    conn.sql("ALTER MODEL m VERSION 2 SET ALIAS challenger")
    yield conn
    conn.close()


def canonical(conn, kind: str) -> dict[int, str]:
    """Each row's key as docs/release.md defines its text: DuckDB's cast to VARCHAR (a TIMESTAMPTZ in
    UTC, formatted here from the instant itself), read on a plain DuckDB connection."""
    rows = conn.duckdb.execute("SELECT n, key, CAST(key AS VARCHAR) FROM keyed").fetchall()
    if kind == "TIMESTAMPTZ":
        return {n: value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for n, value, _ in rows}
    return {n: text for n, _, text in rows}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_key_of_every_type_lands_in_the_same_arm_in_ml_predict_and_a_view(ab, kind):
    ab.sql(f"CREATE OR REPLACE TABLE keyed AS SELECT {KEYS[kind]} AS key, * FROM numbered")
    assert ab.sql("SELECT typeof(key) FROM keyed LIMIT 1").fetchall()[0][0].startswith(
        {"ENUM": "ENUM", "DECIMAL": "DECIMAL"}.get(kind, kind.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")))
    query = f"SELECT n, model_version, predicted_sex, predicted_sex_probs FROM ML.PREDICT(MODEL m, TABLE keyed, {AB})"
    ab.sql(f"CREATE OR REPLACE VIEW arms AS {query}")
    predicted = ab.sql(f"{query} ORDER BY n").fetchall()
    viewed = ab.sql("SELECT * FROM arms ORDER BY n").fetchall()
    assert same_predictions(viewed, predicted)  # the same arm, version and prediction for every row
    texts = canonical(ab, kind)
    assert {n: version for n, version, *_ in predicted} == {n: 2 if arm(texts[n], FRACTION) else 1 for n in texts}
    share = sum(version == 2 for _, version, *_ in predicted) / len(predicted)
    assert 0.25 < share < 0.55 or kind in ("BOOLEAN", "ENUM")  # a few texts only: whole ones in each arm
    by_version = {v: dict((r[0], r[1:]) for r in ab.sql(f"SELECT n, predicted_sex, predicted_sex_probs FROM "
                                                         f"ML.PREDICT(MODEL m VERSION {v}, TABLE keyed)").fetchall())
                  for v in (1, 2)}
    assert all(row[2:] == by_version[row[1]][row[0]] for row in predicted)  # each arm scored by its version


@pytest.mark.parametrize("kind, key", [("LIST", "[n, n + 1]"), ("STRUCT", "{'a': n}"), ("MAP", "MAP {n: 'x'}")])
def test_a_nested_split_key_is_refused_by_both(ab, kind, key):
    ab.sql(f"CREATE OR REPLACE TABLE nested AS SELECT {key} AS key, * FROM numbered")
    message = (f"split_key 'key' is a {kind} column; A/B serving hashes one value per row. Use a scalar column, or "
               "make one in the input query")
    with pytest.raises(DataError, match=message):
        ab.sql(f"SELECT * FROM ML.PREDICT(MODEL m, TABLE nested, {AB})").fetchall()
    with pytest.raises(DataError, match=message):
        ab.sql(f"CREATE VIEW nested_arms AS SELECT * FROM ML.PREDICT(MODEL m, TABLE nested, {AB})")


# --- label types and classes ---------------------------------------------------------------------------

SIZE = {"bool": "body_mass_g > 4200", "three": "(body_mass_g > 3700)::INT + (body_mass_g > 4700)::INT",
        "two": "(body_mass_g > 4200)::INT"}


def retrain(conn, label):
    conn.sql(f"""CREATE OR REPLACE MODEL size OPTIONS (model_type = 'logistic_reg', input_label_cols = ['big'],
                 deploy = 'always') AS SELECT island, bill_length_mm, flipper_length_mm, {SIZE[label]} AS big
                 FROM penguins WHERE body_mass_g IS NOT NULL""")


PREDICTED = "SELECT predicted_big, predicted_big_probs FROM {} ORDER BY ALL"


def test_a_view_refuses_a_deployed_label_of_another_type_and_follows_other_classes(penguins):
    retrain(penguins, "bool")
    penguins.sql("CREATE VIEW sized AS SELECT * FROM ML.PREDICT(MODEL size, TABLE penguins)")
    as_bool = penguins.sql(PREDICTED.format("sized")).fetchall()
    assert {r[0] for r in as_bool} == {True, False}
    retrain(penguins, "three")  # version 2: big is 0, 1 or 2
    served = penguins.sql(PREDICTED.format("ML.PREDICT(MODEL size, TABLE penguins)")).fetchall()
    assert {r[0] for r in served} == {0, 1, 2}  # ML.PREDICT returns the classes ...
    with pytest.raises(DataError) as error:  # ... and the view cannot: it refuses, naming itself
        penguins.sql(PREDICTED.format("sized")).fetchall()
    assert ("View 'sized' scores with model 'size', whose version 2 is served now; it predicts predicted_big INT64; "
            "predicted_big_probs ARRAY<STRUCT<label INT64, prob FLOAT64>> (ML.PREDICT returns them), but the view "
            "returns predicted_big BOOL; predicted_big_probs ARRAY<STRUCT<label BOOL, prob FLOAT64>>, as the version it "
            "was created over. Recreate the view (CREATE OR REPLACE VIEW sized AS ... ML.PREDICT(MODEL size, ...)) to "
            "serve it, or pin the view to the version it was made for (MODEL size VERSION n).") == str(error.value)
    penguins.sql("CREATE VIEW sized_again AS SELECT * FROM ML.PREDICT(MODEL size, TABLE penguins)")
    assert same_predictions(penguins.sql(PREDICTED.format("sized_again")).fetchall(), served)
    retrain(penguins, "two")  # version 3: the same type, other classes (0, 1): the new view follows it
    served = penguins.sql(PREDICTED.format("ML.PREDICT(MODEL size, TABLE penguins)")).fetchall()
    assert {len(r[1]) for r in served} == {2}
    assert same_predictions(penguins.sql(PREDICTED.format("sized_again")).fetchall(), served)
    penguins.sql("ALTER MODEL size DEPLOY VERSION 1")  # the first view serves its own label type again
    assert same_predictions(penguins.sql(PREDICTED.format("sized")).fetchall(), as_bool)


# --- expiry ----------------------------------------------------------------------------------------------

PAST = "TIMESTAMP '2001-01-01 00:00:00 UTC'"


def test_an_expired_challenger_is_served_neither_by_ml_predict_nor_by_a_view(ab):
    ab.sql("CREATE OR REPLACE TABLE keyed AS SELECT n AS key, * FROM numbered")
    query = f"SELECT * FROM ML.PREDICT(MODEL m, TABLE keyed, {AB})"
    ab.sql(f"CREATE OR REPLACE VIEW arms AS {query}")
    ab.sql("CREATE OR REPLACE VIEW deployed AS SELECT * FROM ML.PREDICT(MODEL m, TABLE keyed)")
    assert ab.sql("SELECT count(DISTINCT model_version) FROM arms").fetchall() == [(2,)]
    try:  # ALTER MODEL … SET OPTIONS changes the deployed version; the registry call changes version 2
        ab.executor.registry.update_options("m", {"expiration_timestamp": "2001-01-01T00:00:00+00:00"}, 2)
        for read in (query, "SELECT * FROM arms"):
            with pytest.raises(ModelExpiredError, match=r"Model 'm' version 2 expired at 2001-01-01"):
                ab.sql(read).fetchall()
        assert ab.sql("SELECT count(*) FROM deployed").fetchall() == [(344,)]  # version 1 serves on
        ab.sql(f"ALTER MODEL m SET OPTIONS (expiration_timestamp = {PAST})")  # the deployed version 1
        with pytest.raises(ModelExpiredError, match=r"Model 'm' version 1 expired at 2001-01-01"):
            ab.sql("SELECT * FROM deployed").fetchall()
    finally:
        for version in (1, 2):
            ab.executor.registry.update_options("m", {"expiration_timestamp": "2099-01-01T00:00:00+00:00"}, version)
    assert ab.sql("SELECT count(*) FROM arms").fetchall() == [(344,)]
