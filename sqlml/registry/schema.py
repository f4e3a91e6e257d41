"""The registry's tables, and how a database written by an older sqlml is brought up to date.

Each migration is a list of statements; ``sqlml.schema_version`` records which ran, so a later
release adds its tables (or columns) to existing databases by appending one migration.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from ..engines.base import Engine

SCHEMA = "sqlml"
TABLE = f"{SCHEMA}.models"
TRIALS = f"{SCHEMA}.trials"  # one row per tuning trial of a version (sqlml.train.tune); trial 0 is the baseline
DROPPED = f"{SCHEMA}.dropped"  # a note of every dropped version, so views over it can name it
DEPLOYMENTS = f"{SCHEMA}.deployments"  # append-only: every deployment decision (registry/deployments.py)
SERVING = f"{SCHEMA}.serving"  # per model: what the log adds up to, read by views when they run
VERSION_TABLE = f"{SCHEMA}.schema_version"

MODELS_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
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
)"""

TRIALS_DDL = f"""CREATE TABLE IF NOT EXISTS {TRIALS} (
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
)"""

#: Migration n (1-based) brings a database from schema version n - 1 to n. IF NOT EXISTS in the
#: first: databases written before schema versions were recorded already have those tables.
MIGRATIONS: list[list[str]] = [
    [MODELS_DDL, TRIALS_DDL],
    [f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS signature VARCHAR",
     f"ALTER TABLE {TRIALS} ADD COLUMN IF NOT EXISTS signature VARCHAR",
     f"""CREATE TABLE IF NOT EXISTS {DROPPED} (
    name VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    model_type VARCHAR,
    label VARCHAR,
    label_type VARCHAR,
    input_schema JSON,
    fingerprint VARCHAR NOT NULL,
    dropped_at TIMESTAMP DEFAULT current_timestamp
)"""],
    [f"""CREATE TABLE IF NOT EXISTS {DEPLOYMENTS} (
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
     f"""CREATE TABLE IF NOT EXISTS {SERVING} (
    model VARCHAR PRIMARY KEY,
    state JSON NOT NULL,
    signature VARCHAR NOT NULL
)"""],
]


def table_exists(engine: "Engine", table: str) -> bool:
    """Whether the current database has the registry table ``sqlml.<table>``."""
    return bool(engine.fetch("SELECT 1 FROM information_schema.tables WHERE table_catalog = current_database() "
                             "AND table_schema = ? AND table_name = ?", [SCHEMA, table]))


def current_version(engine: "Engine") -> int:
    """How many migrations this database has run (0 for one sqlml never wrote to)."""
    return (engine.fetch(f"SELECT max(version) FROM {VERSION_TABLE}")[0][0] or 0) \
        if table_exists(engine, "schema_version") else 0


def migrate(engine: "Engine") -> None:
    """Run the migrations this database has not run yet, each in its own transaction. A read-only
    database is left as it is (reading it works; writing needs a read-write open)."""
    done = current_version(engine)
    if done >= len(MIGRATIONS) or engine.fetch("SELECT readonly FROM duckdb_databases() "
                                               "WHERE database_name = current_database()")[0][0]:
        return
    engine.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    engine.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL, "
                   "applied_at TIMESTAMP DEFAULT current_timestamp)")
    for number, statements in enumerate(MIGRATIONS[done:], done + 1):
        with engine.transaction():
            for statement in statements:
                engine.fetch(statement)
            engine.fetch(f"INSERT INTO {VERSION_TABLE} (version) VALUES (?)", [number])
