"""Runs plans: trains and stores models, computes ML.* tables, then runs the plain SQL.

    SQL text → sqlglot AST (sql.dialect, sql.parse) → plan (sql.plan) → engine (here, through engines/)"""

from __future__ import annotations

import sys
import typing as t

import pyarrow as pa

from . import views
from .engines.duckdb import DuckDBEngine
from .errors import SqlmlError
from .functions import HANDLERS
from .functions.base import Call
from .model import loaded
from .model.loaded import LoadedModel
from .registry import versions
from .registry.versions import Registry
from .sql import transform
from .sql.parse import parse
from .sql.plan import Alter, Drop, Planner, Query, TableFunction, Train
from .train import tune


class Executor:
    """Executes sqlml statements on one engine, with progress messages sent to ``progress``."""

    def __init__(self, engine: DuckDBEngine, progress: t.Callable[[str], None] | None = None):
        self.engine = engine
        self.registry = Registry(engine)
        self.planner = Planner(self.registry, engine.dialect)
        self.progress = progress or (lambda message: print(message, file=sys.stderr))

    def run(self, text: str) -> t.Any:
        """Run every statement in ``text``; return the last one's result (a relation, or None)."""
        result = None
        for statement in parse(text):
            result = self.run_step(self.planner.plan(statement))
        return result

    def run_step(self, step) -> t.Any:
        if isinstance(step, Train):
            return self.train(step)
        if isinstance(step, Drop):
            return self.drop(step)
        if isinstance(step, Alter):
            return self.alter(step)
        return self.query(step)

    def load(self, name: str, version: int | None = None, trial_id: int | None = None) -> LoadedModel:
        """A stored version, or one tuning trial of it (``STRUCT(3 AS trial_id)``)."""
        info = self.registry.resolve(name, version)
        if trial_id is None:
            return loaded.CACHE.get(info, self.registry.blob)
        trial = versions.trial_version(info, self.registry.trials(info.name, info.version), trial_id)
        return loaded.CACHE.get(trial, self.registry.trial_blob)

    def train(self, step: Train) -> None:
        exists = bool(self.registry.versions(step.name))
        if exists and step.if_not_exists:
            return None
        if exists and not step.replace:
            raise SqlmlError(f"Model '{step.name}' already exists. Use CREATE OR REPLACE MODEL to train a new "
                             "version, or CREATE MODEL IF NOT EXISTS to keep it.")
        kind, checked = tune.resolve_options(step.options)  # fail on bad options before reading any data
        fitted, query_sql = None, step.query_sql
        if step.transform:  # statistics come from the training query's rows, as BigQuery's OVER () does
            fitted = transform.fit(self.engine, step.transform, step.query_sql,
                                   checked.get("input_label_cols", ["label"])[0] if kind.supervised else None,
                                   keep=[checked.get("data_split_col"), checked.get("instance_weight_col")],
                                   dialect=self.engine.dialect)
            query_sql = transform.training_sql(fitted, step.query_sql)
        table = self.engine.read_arrow(query_sql)
        row = tune.train(table, step.options, step.name, step.query_sql, self.progress, transform=fitted)
        version = self.registry.add(row)
        views.register(self.engine.connection, self.registry.resolve(step.name, version))
        self.progress(f"Model '{step.name}' version {version} stored.")
        return None

    def drop(self, step: Drop) -> None:
        dropped = [info.fingerprint for info in self.registry.versions(step.name)]
        if not self.registry.drop(step.name) and not step.if_exists:
            raise SqlmlError(f"Model '{step.name}' does not exist (use DROP MODEL IF EXISTS to ignore that).")
        loaded.CACHE.forget(dropped)  # a view's scoring function must not go on serving a dropped version

    def alter(self, step: Alter) -> None:
        if not self.registry.versions(step.name):
            if step.if_exists:
                return None
            self.registry.resolve(step.name)  # raises the not-found error with the known models
        self.registry.update_options(step.name, step.options)  # views read the threshold from the registry

    def query(self, step: Query) -> t.Any:
        for info in step.models:
            views.register(self.engine.connection, info)
        if step.passthrough:  # nothing for the engine to do: hand the computed table back as it is
            return self.engine.connection.from_arrow(self.compute(step.tables[0]))
        registered = []
        try:
            for table_function in step.tables:
                self.engine.register_table(table_function.name, self.compute(table_function))
                registered.append(table_function.name)
            result = self.engine.execute(step.sql)
            if not step.returns_rows:
                return None
            if not registered:
                return result
            # Registered tables are dropped below, so a result that reads them is materialized now.
            return self.engine.connection.from_arrow(result.to_arrow_table())
        finally:
            for name in registered:
                self.engine.unregister_table(name)

    def compute(self, tf: TableFunction) -> pa.Table:
        params = self._value(tf.params_sql) or {}
        model = self.load(*tf.model, trial_id=params.pop("trial_id", None)) if tf.model else None
        input_sql = tf.input_sql
        if model is not None and model.transform and input_sql is not None:
            # Every function reads the data as the model saw it in training: through its TRANSFORM.
            input_sql = transform.wrap_sql(model.transform, input_sql, self.engine.schema(input_sql).names)
        call = Call(
            function=tf.function,
            engine=self.engine,
            model=model,
            input_sql=input_sql,
            params=params,
            argument=self._value(tf.argument_sql),
        )
        return HANDLERS[tf.function](call)

    def _value(self, sql: str | None) -> t.Any:
        """Evaluate a constant SQL expression (STRUCT(...), GENERATE_ARRAY(...)) with the engine."""
        if sql is None:
            return None
        value = self.engine.fetch(f"SELECT {sql}")[0][0]
        return {k.lower(): v for k, v in value.items()} if isinstance(value, dict) else value
