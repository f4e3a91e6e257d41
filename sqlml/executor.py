"""Runs plans: trains and stores models, computes ML.* tables, then runs the plain SQL.

    SQL text → sqlglot AST (sql.dialect, sql.parse) → plan (sql.plan) → engine (here, through engines/)"""

from __future__ import annotations

import dataclasses
import sys
import typing as t

import pyarrow as pa
import sqlglot
from sqlglot import exp

from . import compiled_views, outputs, views
from .engines.base import Engine
from .errors import DataError, SecretKeyError, SqlmlError, UnsupportedError
from .model import drift, envelope, loaded, serve
from .model import options as opts
from .model.bigquery_options import refuse_expired
from .model.loaded import LoadedModel
from .registry.deployments import Decision, Serving
from .registry.release import Release
from .registry.trials import trial_version
from .registry.versions import Registry
from .sql import catalog, parameters, preprocessing, transform
from .sql.parse import parse
from .sql.plan import Alter, Drop, ModelName, Planner, Query, Step, TableFunction, Train
from .train.labels import label_of, role_columns

if t.TYPE_CHECKING:
    from .functions.base import Data, Stream
    from .train import distill, gate

# The handlers (functions/) and training (train/) are imported where they are used: connecting and
# running plain SQL never load scikit-learn (tests/test_architecture.py).


class Executor:
    """Executes sqlml statements on one engine, with progress messages sent to ``progress``."""

    def __init__(self, engine: Engine, progress: t.Callable[[str], None] | None = None, dialect: str = "duckdb"):
        self.engine = engine
        self.dialect = dialect  # the dialect statements are written in; the engine's is engine.dialect
        self.registry = Registry(engine)
        self.registry.on_change = lambda model: compiled_views.follow(engine, self.registry, model)
        self.planner = Planner(engine.dialect)
        self.progress = progress or (lambda message: print(message, file=sys.stderr))

    def run(self, text: str, params: list | dict | None = None) -> t.Any:
        """Run every statement in ``text``; return the last one's result (a relation, or None).
        ``params`` are bound, never written into the SQL: ``$name`` from a dict, ``?`` from a list."""
        statements = parse(text, self.dialect, self.engine.dialect, as_written=params is None)
        result = None
        with self.engine.bound(parameters.named(statements, params)):
            for statement in statements:
                result = self.run_step(self.planner.plan(statement))
        return result

    def run_step(self, step: Step) -> t.Any:
        if isinstance(step, Train):
            return self.train(step)
        if isinstance(step, Drop):
            return self.drop(step)
        if isinstance(step, Alter):
            return self.alter(step)
        return self.query(step)

    def load(self, name: str, version: int | None = None, trial_id: int | None = None) -> LoadedModel:
        """A stored version, or one tuning trial of it (``STRUCT(3 AS trial_id)``)."""
        return self._load(name, version, trial_id)[0]

    def _load(self, name: str, version: int | str | None, trial_id: int | None) -> tuple[LoadedModel, Serving | None]:
        """:meth:`load`, with the serving state read to resolve the version (None if none was read)."""
        info, serving = self.registry.resolve_serving(name, version)
        if trial_id is None:
            return loaded.CACHE.get(info, lambda fingerprint: self.registry.blob(info)), serving
        trial = trial_version(info, self.registry.trials(info), trial_id)
        return loaded.CACHE.get(trial, lambda fingerprint: self.registry.trial_blob(trial)), serving

    def train(self, step: Train) -> None:
        self._refuse_in_transaction("CREATE MODEL")
        exists = bool(self.registry.numbers(step.name))
        if exists and step.if_not_exists:
            return None
        if exists and not step.replace:
            raise SqlmlError(f"Model '{step.name}' already exists. Use CREATE OR REPLACE MODEL to train a new "
                             "version, or CREATE MODEL IF NOT EXISTS to keep it.")
        from .train import distill, families, tune
        kind, checked = tune.resolve_options(step.options)  # fail on bad options before reading any data
        if "distill_from" in checked:
            distill.check(kind, checked, bool(step.transform))
        self._ensure_key()
        # ML.STANDARD_SCALER(x) OVER () ... in the training query: computed over its rows, stored as constants.
        step = dataclasses.replace(step, query_sql=preprocessing.fill(step.analytics, self.engine.fetch,
                                                                      self.engine.dialect, step.query_sql))
        fitted, query_sql = None, step.query_sql
        trainer = families.TRAINERS.get(kind.family)  # a family that learns from no feature matrix
        if step.transform and trainer is None:  # statistics come from the training query's rows, as BigQuery's OVER () does
            fitted = transform.fit(self.engine.fetch, self.engine.schema(step.query_sql).names, step.transform, step.query_sql,
                                   label_of(kind, checked), keep=role_columns(kind, checked)[1:],
                                   dialect=self.engine.dialect)
            query_sql = transform.training_sql(fitted, step.query_sql, self.engine.dialect)
        lesson, teacher = None, None
        if trainer is not None:
            row = trainer(self.engine, step, self.progress)
        else:
            options = step.options
            if "distill_from" in checked:  # the teacher's predictions are the labels (sqlml.train.distill)
                lesson, teacher = self._lesson(kind, checked, query_sql)
                rows, options = lesson.rows, lesson.options
            else:
                rows = tune.read(self.engine, query_sql, kind, checked)
            row = tune.train(rows, options, step.name, step.query_sql, self.progress, transform=fitted,
                             training_stats=self._raw_statistics(step.query_sql, kind, checked) if fitted else None,
                             **({"split": lesson.split} if lesson else {}))
        new = tune.loaded(row)
        if lesson:
            distill.report(row, teacher, new, lesson, self.progress)
        eval_data, on_training_rows = row.pop("eval_data"), row.pop("evaluated_on_training_rows")
        on_training_rows = on_training_rows or (lesson is not None and not lesson.held_out)
        row.pop("fitted", None)  # a tuned row has none
        own_gate = row.pop("gate", None)  # a family that judges a retrain its own way (sqlml.train.families)
        if own_gate is not None:
            verdict = own_gate(new, self._deployed(step.name))
        else:
            verdict = self._gate(step.name, checked, new, eval_data, on_training_rows,
                                 (lambda: lesson.decided) if lesson else lambda: self.engine.read_arrow(query_sql))
        version = self.registry.add(row, Decision("trained_deployed" if verdict.deploy else "trained_not_deployed",
                                                  None, reason=verdict.reason, metric=verdict.metric,
                                                  new_value=verdict.new_value, old_value=verdict.old_value,
                                                  eval_rows=verdict.eval_rows))
        self._say_verdict(step.name, version, verdict)
        views.refresh(self.registry, step.name)  # views over the model may serve the new version
        self.progress(f"Model '{step.name}' version {version} stored.")
        return None

    def _lesson(self, kind: t.Any, options: dict, query_sql: str) -> tuple[distill.Lesson, LoadedModel]:
        """A student's training rows: its query's rows scored by the teacher version it distills."""
        from .train import distill
        teacher = self.load(options["distill_from"], options.get("distill_from_version"))
        distill.check_teacher(teacher, kind)
        scored = self.compute(TableFunction("__sqlml_teacher", "PREDICT", (teacher.info.name, teacher.info.version),
                                            query_sql))
        return distill.lesson(teacher, scored.table(), kind, options), teacher

    def _raw_statistics(self, query_sql: str, kind: t.Any, options: dict) -> dict:
        """ML.VALIDATE_DATA_SKEW's statistics of a TRANSFORM model's raw input columns, over its training query."""
        kinds = drift.comparable(self.engine.schema(query_sql), role_columns(kind, options))
        return drift.statistics(lambda: self.engine.read_batches(query_sql), kinds)

    def _gate(self, name: str, options: dict, new: LoadedModel, eval_data: pa.Table, on_training_rows: bool,
              table: t.Callable[[], pa.Table]) -> gate.Verdict:
        """The deploy gate's verdict on a new version (train/gate.py), against the deployed one, on the
        rows both held out (``table`` reads the new training query's rows again, where the gate finds them:
        only a retrain gated against a deployed version needs them)."""
        from .train import gate
        deployed = self._deployed(name)
        if deployed is None or options.get("deploy", "if_not_worse") != "if_not_worse" \
                or gate.incomparable(new, deployed):
            return gate.decide(options, new, deployed, gate.Rows(eval_data, None), on_training_rows)
        return gate.guarded(lambda: self._compared(options, new, deployed, eval_data, on_training_rows, table))

    def _deployed(self, name: str) -> LoadedModel | None:
        return self.load(name) if self.registry.numbers(name) else None

    def _compared(self, options: dict, new: LoadedModel, deployed: LoadedModel, eval_data: pa.Table,
                  on_training_rows: bool, table: t.Callable[[], pa.Table]) -> gate.Verdict:
        from .train import gate
        if on_training_rows:  # no split: both are scored on the training rows, if the deployed can read them
            readable = set(deployed.preprocessor.input_columns) <= set(eval_data.column_names)
            return gate.decide(options, new, deployed, gate.Rows(eval_data, eval_data if readable else None), True)
        if deployed.info.legacy:  # its training query is not signed: its held-out rows are not recomputed from it
            return gate.decide(options, new, deployed, gate.unsigned_query_rows(deployed, eval_data), False)
        data = self._data(deployed, deployed.info.query)
        rows = gate.shared_rows(new, deployed, eval_data, table(), data.schema().names, data.table)
        return gate.decide(options, new, deployed, rows, False)

    def _say_verdict(self, name: str, version: int, verdict: gate.Verdict) -> None:
        if verdict.deploy:
            self.progress(f"Model '{name}' version {version} deployed: {verdict.reason}.")
        else:
            remedy = verdict.remedy or f"ALTER MODEL {name} DEPLOY VERSION {version}"
            self.progress(f"Model '{name}' version {version} stored but NOT deployed: {verdict.reason}. "
                          f"To deploy it anyway: {remedy}.")

    def _ensure_key(self) -> None:
        """The first model of a database may create the secret key; a later one never does, since a new
        key would make every model already stored unreadable."""
        if envelope.key_exists():
            envelope.secret_key()  # refuses a weak or unreadable key before any training
            return
        stored = self.registry.count()
        if stored:
            raise SecretKeyError(f"No secret key at {envelope.key_path()}, but this database holds {stored} model "
                                 "version(s) signed with one. Point SQLML_KEY_FILE (or SQLML_SECRET_KEY) at that key; "
                                 "or, to start over with a new key (the stored models become unreadable), "
                                 "run `sqlml key create`.")
        self.progress(f"Created a new secret key at {envelope.create_key()} (keep it: models are signed with it).")

    def _refuse_in_transaction(self, statement: str) -> None:
        """Model statements write the registry in a transaction of their own (a version, its log entry and
        the serving state together or not at all): refused, before any work, inside the caller's."""
        if self.engine.in_transaction():
            raise SqlmlError(f"{statement} cannot run inside an open transaction: sqlml writes a model's versions, "
                             "its deployments log and its serving state in one transaction of its own. COMMIT or "
                             "ROLLBACK first (the open transaction is untouched).")

    def drop(self, step: Drop) -> None:
        self._refuse_in_transaction("DROP MODEL")
        if step.version is not None:
            dropped = [Release(self.registry).drop_version(step.name, step.version)]
            self.progress(f"Model '{step.name}' version {dropped[0].version} dropped.")
        else:
            dropped = self.registry.drop(step.name)
        if not dropped and not step.if_exists:
            raise SqlmlError(f"Model '{step.name}' does not exist (use DROP MODEL IF EXISTS to ignore that).")
        views.retire(self.engine, dropped)
        loaded.CACHE.forget([info.fingerprint for info in dropped])  # free them: nothing may serve them now

    def alter(self, step: Alter) -> None:
        self._refuse_in_transaction("ALTER MODEL")
        if not self.registry.numbers(step.name):
            if step.if_exists:
                return None
            self.registry.resolve(step.name)  # raises the not-found error with the known models
        if step.action == "set_options":  # views read the threshold from the serving state
            self.registry.update_options(step.name, opts.validate(step.options, None))
            return None
        release = Release(self.registry)
        serving = {
            "deploy": lambda: release.deploy(step.name, step.version),
            "rollback": lambda: release.rollback(step.name),
            "disable": lambda: release.set_disabled(step.name, True),
            "enable": lambda: release.set_disabled(step.name, False),
            "set_alias": lambda: release.set_alias(step.name, step.version, step.alias),
            "unset_alias": lambda: release.unset_alias(step.name, step.alias),
        }[step.action]()
        views.refresh(self.registry, step.name)
        state = "disabled: ML.PREDICT serves its baseline" if serving.disabled else "enabled"
        aliases = ", ".join(f"{a} = {v}" for a, v in sorted(serving.aliases.items())) or "none"
        self.progress(f"Model '{step.name}': version {serving.deployed} deployed, {state}; aliases: {aliases}.")

    def query(self, step: Query) -> t.Any:
        views.refusal(self.engine, step.sql)
        if step.views and not self.engine.scoring_views:
            return self._temporary_view(step)
        compiled_views.refusal(self.engine, self.registry, step.sql, step.created_view)
        if step.created_view is not None and step.created_view.catalog in (None, self.engine.current_database()):
            return self._create_view(step)
        sql = step.sql
        for view in step.views:
            sql = sql.replace(view.placeholder,
                              f"({self.view_scoring_sql(view.model, view.input_sql, view.params, view.view)})")
        if step.passthrough:  # nothing for the engine to do: hand the computed rows back as they are
            return self.engine.result(self.compute(self._filled(step, step.tables[0])))
        with outputs.Exposed(self.engine) as exposed:
            for table_function in step.tables:
                # Analytic preprocessing reads the ML.* tables for its statistics before the statement does.
                once = table_function.name not in step.rescanned and not step.analytics
                exposed.add(table_function.name, self.compute(self._filled(step, table_function)), once)
            sql = preprocessing.fill(step.analytics, self.engine.fetch, self.engine.dialect, sql)
            if exposed.names and step.returns_rows:  # the outputs are dropped below
                return exposed.run(lambda: self.engine.detached(sql))
            result = exposed.run(lambda: self.engine.execute(sql))
            return result if step.returns_rows else None

    def _create_view(self, step: Query) -> None:
        """CREATE VIEW over ML.PREDICT, owned by sqlml: plain SQL where the model compiles, rewritten by
        every release (sqlml/compiled_views.py)."""
        def filled(sql: str) -> str:
            return preprocessing.fill(step.analytics, self.engine.fetch, self.engine.dialect, sql)
        view = dataclasses.replace(step.created_view, body_sql=filled(step.created_view.body_sql))
        scored = [dataclasses.replace(self._view_scoring(v.model, filled(v.input_sql), v.params, view.name),
                                      placeholder=v.placeholder) for v in step.views]
        compiled_views.create(self.engine, self.registry, view, scored)

    def _temporary_view(self, step: Query) -> None:
        """CREATE VIEW over ML.PREDICT where a view cannot call a scoring function (Spark): a temporary
        view of this session, its ML.PREDICT computed when the view is read, by the version resolved now."""
        create = sqlglot.parse_one(step.sql, read=self.engine.dialect)
        if not isinstance(create, exp.Create) or not isinstance(create.expression, exp.Query):
            raise UnsupportedError("On this engine, ML.PREDICT inside a view is served only by CREATE VIEW name AS "
                                   "SELECT … (a temporary view of the session).")
        name = create.this.name
        predictions = [TableFunction(v.placeholder, "PREDICT", v.model, v.input_sql, dict(v.params)) for v in step.views]
        with outputs.Exposed(self.engine) as exposed:
            for table_function in [*step.tables, *predictions]:
                exposed.add(table_function.name, self.compute(self._filled(step, table_function)), False)
            sql = preprocessing.fill(step.analytics, self.engine.fetch, self.engine.dialect,
                                     create.expression.sql(self.engine.dialect))
            made = exposed.run(lambda: self.engine.temporary_view(name, sql, "replace" if create.args.get("replace")
                                                                  else "ignore" if create.args.get("exists") else "error"))
        if not made:
            return None
        served = ", ".join(sorted({f"'{v.model[0]}'" for v in step.views}))
        self.progress(f"View '{name}' is a temporary view of this session (a Spark view cannot call sqlml's scoring "
                      f"function): it scores when read, with the version of {served} served now; after a DEPLOY or "
                      "ROLLBACK, create it again (docs/scale_out.md#views).")
        return None

    def _filled(self, step: Query, tf: TableFunction) -> TableFunction:
        """``tf`` with the preprocessing functions of its input (``ML.STANDARD_SCALER(x) OVER ()`` …) compiled."""
        return dataclasses.replace(tf, input_sql=preprocessing.fill(step.analytics, self.engine.fetch,
                                                                    self.engine.dialect, tf.input_sql))

    def view_scoring_sql(self, model: ModelName, input_sql: str, params: dict | None = None, view: str = "") -> str:
        """The SQL a view holds for its ``ML.PREDICT(MODEL model, input[, A/B parameters])``, after defining
        the scoring function it calls (the input goes through the model's TRANSFORM first). ``MODEL m``
        serves whatever is deployed when the view runs; ``MODEL m VERSION n`` always serves version n."""
        return self._view_scoring(model, input_sql, params, view).fallback_sql

    def _view_scoring(self, model: ModelName, input_sql: str, params: dict | None, view: str) -> compiled_views.Scored:
        """:meth:`view_scoring_sql`, with what a view sqlml owns records of it (sqlml/compiled_views.py)."""
        name, version = model
        if isinstance(version, str):
            raise SqlmlError(f"A view serves MODEL {name} (the deployed version, whatever it is when the view runs) "
                             f"or a version number; an alias ('{version}') cannot be pinned in a view.")
        params = params or {}
        ab = "challenger_fraction" in params
        if ab and "split_key" not in params:
            raise SqlmlError("A/B serving needs split_key, the column whose hash decides each row's arm: "
                             "STRUCT(0.2 AS challenger_fraction, 'id' AS split_key).")
        info, serving = self.registry.resolve_serving(name, version)
        refuse_expired(info.name, info.version, info.options)
        if serving is None or serving.incarnation is None:  # the view reads the chain: begin it now
            self._refuse_in_transaction("CREATE VIEW over a model trained by an older sqlml")
            with self.engine.transaction():
                self.registry.serving_state(name)
        model_state = loaded.CACHE.get(info, lambda fingerprint: self.registry.blob(info))
        from .functions.applies import check_applies
        check_applies("PREDICT", model_state)
        function = views.define(self.engine, self.registry, info, ab)
        columns = self.engine.schema(input_sql)  # a missing column is named now, not as DuckDB's binder error
        key = params.get("split_key")
        if ab and key not in columns.names:
            raise DataError(f"A/B serving needs split_key, a column of the input whose hash decides each row's arm; "
                            f"got {key!r}. Columns: {', '.join(columns.names)}.")
        scored_sql = input_sql
        if model_state.transform:
            transform.wrap_sql(model_state.transform, input_sql, columns.names)
            scored_sql = transform.wrap_sql(model_state.transform, input_sql, None, dialect=self.engine.dialect)
        else:
            model_state.preprocessor.check_columns(columns.empty_table())
        pinned = self.registry.pinned(info) if version is not None else None
        key_type = columns.field(key).type if ab else None
        fallback = views.scoring_sql(self.engine, function, scored_sql, view, key, key_type,
                                     params.get("challenger_fraction"), pinned)
        return compiled_views.Scored(
            "", name, version, info.fingerprint if version is not None else None, input_sql,
            [list(c) for c in function.features], function.shape, params.get("challenger_fraction"),
            serve.split_key_sql(key, key_type, self.engine.dialect) if ab else None, fallback)

    def compute(self, tf: TableFunction) -> pa.Table | Stream:
        params = dict(tf.params)
        model, serving = self._load(*tf.model, params.pop("trial_id", None)) if tf.model else (None, None)
        if model is not None:
            refuse_expired(model.info.name, model.info.version, model.info.options)
            from .functions.applies import check_applies
            check_applies(tf.function, model)
        function = tf.function
        if function == "PREDICT" and serving is not None and tf.model[1] is None and serving.disabled:
            self.progress(f"Model '{model.info.name}' is disabled (ALTER MODEL ... ENABLE to undo): "
                          "ML.PREDICT serves its baseline.")
            function = "BASELINE"
        reader = None if function in catalog.RAW_INPUT else model  # skew reads the rows as given, before TRANSFORM
        input_sql = tf.input_sql
        if "challenger_fraction" in params and input_sql is not None:
            input_sql = self._keyed(input_sql, params.get("split_key"))
        from .functions.base import Call
        call = Call(function=function, model=model, params=params, argument=tf.argument,
                    data=self._data(reader, input_sql, function == "TRANSFORM") if input_sql is not None else None,
                    data_b=self._data(None, tf.input_b_sql) if tf.input_b_sql is not None else None)
        if call.data is not None and hasattr(self.progress, "advance"):  # a progress bar of the rows read
            call.data = _counted(call.data, f"ML.{function}", self.progress, self.engine.rows_in_process)
        if tf.model_b is not None:  # ML.COMPARE: the same rows, through the second model's own TRANSFORM
            other = self.load(*tf.model_b)
            shared = not (model.transform or other.transform)  # then one read of the rows serves both
            call.other = Call(function=function, model=other, params=params,
                              data=call.data if shared else self._data(other, tf.input_sql))
        if "challenger_fraction" in params and model is not None:
            call.challenger = self.load(model.info.name, "challenger")
            refuse_expired(call.challenger.info.name, call.challenger.info.version, call.challenger.info.options)
        if model is not None and model.info.query and not model.info.legacy:  # a query sqlml signed
            call.training = self._training(model)
        if function == "EVALUATE" and model is not None and "distill_from" in model.info.options and call.data:
            call.teacher = self.load(model.info.options["distill_from"], model.info.options.get("distill_from_version"))
        if tf.function in catalog.READS_TRIALS:
            call.trials = self.registry.trials(model.info) if model else None
        from .functions import HANDLERS
        return HANDLERS[function](call)

    def _keyed(self, input_sql: str, key: t.Any) -> str:
        """ML.PREDICT's A/B input with the canonical text of its split key (the one a view hashes too)."""
        columns = self.engine.schema(input_sql)
        if not isinstance(key, str) or key not in columns.names:
            raise DataError(f"A/B serving needs split_key, a column of the input whose hash decides each row's arm; "
                            f"got {key!r}. Columns: {', '.join(columns.names)}.")
        text = serve.split_key_sql(key, columns.field(key).type, self.engine.dialect)
        return f"SELECT *, {text} AS {serve.SPLIT_KEY} FROM ({input_sql}) AS __sqlml_keyed"

    def _training(self, model: LoadedModel) -> Data:
        """The model's training rows (its signed query, through its TRANSFORM), read only when a handler
        asks: the tables it read may be gone (or live on another engine, for a copied model)."""
        import functools
        data = functools.cache(lambda: self._data(model, model.info.query))
        from .functions.base import Data
        return Data(lambda: data().batches(), lambda: data().schema(), lambda: data().table(), source=model.info.query,
                    apply=lambda function, empty: data().apply(function, empty),
                    count=lambda function, empty: data().count(function, empty),
                    aggregate=lambda: data().column_aggregates())

    def _data(self, model: LoadedModel | None, sql: str, bigquery_shape: bool = False) -> Data:
        """Rows of ``sql`` as a handler reads them: through the model's TRANSFORM, as in training
        (``bigquery_shape``: with BigQuery's STRUCT/ARRAY outputs, for ML.TRANSFORM)."""
        if model is not None and model.transform:
            sql = transform.wrap_sql(model.transform, sql, self.engine.schema(sql).names, bigquery_shape,
                                     self.engine.dialect)
        from .functions.base import Data
        return Data(lambda: self.engine.input_batches(sql), lambda: self.engine.schema(sql),
                    lambda: self.engine.read_arrow(sql), source=sql,
                    apply=lambda function, empty: self.engine.apply(sql, function, empty),
                    count=lambda function, empty: self.engine.counted(sql, function, empty),
                    aggregate=lambda: self.engine.column_aggregates(sql))


def _counted(data: Data, task: str, progress: t.Any, in_process: bool) -> Data:
    """``data`` whose batches report the rows read so far to ``progress.advance`` (sqlml.progress). Where
    the engine's row-level work runs ``in_process`` (DuckDB), it reads those batches here, as the engine's
    own ``apply`` would; elsewhere (Spark's executors) only what this process reads is counted."""
    def batches() -> t.Iterator[pa.RecordBatch]:
        done = 0
        try:
            for batch in data.batches():
                done += batch.num_rows
                progress.advance(task, done)
                yield batch
        finally:
            progress.finish(task)
    return dataclasses.replace(data, batches=batches, apply=None if in_process else data.apply)
