"""The registry's tables, and how a database written by an older sqlml is brought up to date.

Each migration is a list of statements; ``sqlml.schema_version`` records which ran, so a later
release adds its tables (or columns) to existing databases by appending one migration.

Every name is qualified with the database's catalog (:class:`Tables`): a database file named
``sqlml.duckdb`` is a catalog called ``sqlml`` holding a schema called ``sqlml``, and DuckDB refuses
the two-part name ``sqlml.models`` there as ambiguous.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as t

from sqlglot import exp

if t.TYPE_CHECKING:
    from ..engines.base import Engine

SCHEMA = "sqlml"


@dataclasses.dataclass(frozen=True)
class Tables:
    """The registry's tables in one database, each as a catalog-qualified SQL name."""

    catalog: str
    models: str  # one row per model version, with its signed bytes (registry/versions.py)
    trials: str  # one row per tuning trial of a version (sqlml.train.tune); trial 0 is the baseline
    dropped: str  # a note of every dropped version, so views over it can name it
    deployments: str  # append-only, a hash chain per model: every deployment decision (registry/deployments.py)
    serving: str  # per model: what the log adds up to, read by views when they run
    scoring_functions: str  # the scoring function each view calls (sqlml/views.py)
    views: str  # the views over ML.PREDICT sqlml owns: their definition and text, signed (sqlml/compiled_views.py)
    key_check: str  # one row: a tag of a constant under the key that signed the registry (a wrong key is named)
    schema_version: str

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(catalog: str) -> "Tables":
        names = {f.name: qualified(catalog, f.name) for f in dataclasses.fields(Tables) if f.name != "catalog"}
        return Tables(catalog, **names)


def qualified(catalog: str, table: str) -> str:
    """``"catalog".sqlml.table`` as DuckDB SQL."""
    return exp.table_(table, db=SCHEMA, catalog=catalog, quoted=True).sql("duckdb")


def migrations(t: Tables) -> list[list[str]]:
    """Migration n (1-based) brings a database from schema version n - 1 to n. IF NOT EXISTS in the
    first: databases written before schema versions were recorded already have those tables."""
    return [
        [f"""CREATE TABLE IF NOT EXISTS {t.models} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    model_type VARCHAR NOT NULL,
    label VARCHAR,
    label_type VARCHAR,
    options JSON,
    input_schema JSON,
    training_rows BIGINT,
    eval_rows BIGINT,
    metrics JSON,
    eval_tables JSON,
    feature_info JSON,
    training_info JSON,
    library_versions JSON,
    query VARCHAR,
    created_at TIMESTAMP DEFAULT current_timestamp,
    fingerprint VARCHAR NOT NULL,
    model BLOB NOT NULL,
    PRIMARY KEY (name, version)
)""", f"""CREATE TABLE IF NOT EXISTS {t.trials} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    trial_id INTEGER NOT NULL,
    model_type VARCHAR,
    hyperparameters JSON,
    hparam_tuning_evaluation_metrics JSON,
    training_loss DOUBLE,
    eval_loss DOUBLE,
    status VARCHAR NOT NULL,
    error_message VARCHAR,
    is_optimal BOOLEAN NOT NULL,
    training_seconds DOUBLE,
    metrics JSON,
    eval_tables JSON,
    training_info JSON,
    fingerprint VARCHAR,
    model BLOB,
    PRIMARY KEY (name, version, trial_id)
)"""],
        [f"ALTER TABLE {t.models} ADD COLUMN IF NOT EXISTS signature VARCHAR",
         f"ALTER TABLE {t.trials} ADD COLUMN IF NOT EXISTS signature VARCHAR",
         f"""CREATE TABLE IF NOT EXISTS {t.dropped} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    model_type VARCHAR,
    label VARCHAR,
    label_type VARCHAR,
    input_schema JSON,
    fingerprint VARCHAR NOT NULL,
    dropped_at TIMESTAMP DEFAULT current_timestamp
)"""],
        [f"""CREATE TABLE IF NOT EXISTS {t.deployments} (
    model VARCHAR NOT NULL,
    seq BIGINT NOT NULL,  -- per model: sessions training other models at the same moment never collide
    version INTEGER,
    previous_version INTEGER,
    action VARCHAR NOT NULL,
    alias VARCHAR,
    reason VARCHAR,
    metric VARCHAR,
    new_value DOUBLE,
    old_value DOUBLE,
    eval_rows BIGINT,
    created_at TIMESTAMP DEFAULT current_timestamp,
    signature VARCHAR NOT NULL,
    PRIMARY KEY (model, seq)
)""",
         f"""CREATE TABLE IF NOT EXISTS {t.serving} (
    model VARCHAR PRIMARY KEY,
    state JSON NOT NULL,
    signature VARCHAR NOT NULL
)""",
         f"""CREATE TABLE IF NOT EXISTS {t.scoring_functions} (
    name VARCHAR PRIMARY KEY,
    model VARCHAR NOT NULL,
    features JSON NOT NULL,
    ab BOOLEAN NOT NULL
)"""],
        # The release chain: each log entry belongs to one incarnation of its model (a random id its
        # genesis entry draws), and so does each version stored since; a scoring function records its
        # output columns, so it is defined at connect without reading (or trusting) any model.
        [f"ALTER TABLE {t.deployments} ADD COLUMN IF NOT EXISTS incarnation VARCHAR",
         f"ALTER TABLE {t.models} ADD COLUMN IF NOT EXISTS incarnation VARCHAR",
         f"ALTER TABLE {t.scoring_functions} ADD COLUMN IF NOT EXISTS output JSON",
         f"CREATE TABLE IF NOT EXISTS {t.key_check} (tag VARCHAR NOT NULL, created_at TIMESTAMP DEFAULT current_timestamp)"],
        # Views sqlml owns: stored as plain SQL where the served versions compile, rewritten by every
        # release in its transaction; the text each holds is recorded, signed, to be checked against.
        [f"""CREATE TABLE IF NOT EXISTS {t.views} (
    schema_name VARCHAR NOT NULL,
    view_name VARCHAR NOT NULL,
    definition JSON NOT NULL,  -- the view's query with each ML.PREDICT as a placeholder, and each ML.PREDICT
    sql VARCHAR NOT NULL,  -- the view's text as DuckDB stores it (duckdb_views().sql), as sqlml last wrote it
    reflects JSON NOT NULL,  -- per model read, the deployments log entry (its signature) the text was written for
    signature VARCHAR NOT NULL,
    PRIMARY KEY (schema_name, view_name)
)"""],
    ]


def table_exists(engine: "Engine", table: str) -> bool:
    """Whether the current database has the registry table ``sqlml.<table>``."""
    return engine.has_table(SCHEMA, table)


def current_version(engine: "Engine", tables: Tables) -> int:
    """How many migrations this database has run (0 for one sqlml never wrote to)."""
    return (engine.fetch(f"SELECT max(version) FROM {tables.schema_version}")[0][0] or 0) \
        if table_exists(engine, "schema_version") else 0


def migrate(engine: "Engine", tables: Tables) -> None:
    """Run the migrations this database has not run yet, each in its own transaction (or inside the
    caller's, when one is open). A read-only database is left as it is (reading it works; writing
    needs a read-write open)."""
    steps = migrations(tables)
    done = current_version(engine, tables)
    if done >= len(steps) or engine.read_only():
        return
    engine.execute(f"CREATE SCHEMA IF NOT EXISTS {exp.table_(SCHEMA, db=tables.catalog, quoted=True).sql('duckdb')}")
    engine.execute(f"CREATE TABLE IF NOT EXISTS {tables.schema_version} (version INTEGER NOT NULL, "
                   "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for number, statements in enumerate(steps[done:], done + 1):
        with engine.transaction():
            for statement in statements:
                engine.fetch(statement)
            engine.fetch(f"INSERT INTO {tables.schema_version} (version) VALUES (?)", [number])
