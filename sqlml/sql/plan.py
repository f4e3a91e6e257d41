"""From a parsed statement to a plan: steps of plain SQL in the engine's dialect plus model work.

The planner touches no data and loads nothing: a step names its models (resolved and loaded by the
executor) and carries its constant arguments as Python values read from the AST. It needs only the
target engine's sqlglot dialect name; nothing here assumes DuckDB.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

from sqlglot import exp

from ..errors import SqlmlError
from . import catalog, constants, options, preprocessing, scans
from .dialect import AlterModel, CreateModel, DropModel, MLCall, ModelRef

VIEW_PARAMS = {"challenger_fraction", "split_key"}
PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")
ModelName = tuple[str, "int | str | None"]  # (registry name, version number, alias, or None for the deployed one)


@dataclass
class TableFunction:
    """An ML.* call computed by the executor and exposed to the final SQL under ``name``."""

    name: str
    function: str
    model: ModelName | None
    input_sql: str | None
    params: dict = field(default_factory=dict)  # the STRUCT(...) argument's fields
    argument: t.Any = None  # any other last argument (GENERATE_ARRAY(...) as a list)
    model_b: ModelName | None = None  # ML.COMPARE's second model
    input_b_sql: str | None = None  # ML.VALIDATE_DATA_DRIFT's second data argument (the study rows)


@dataclass
class ViewScoring:
    """An ML.PREDICT inside CREATE VIEW: the executor puts the model's scoring SQL where ``placeholder`` is."""

    placeholder: str
    model: ModelName
    input_sql: str
    params: dict = field(default_factory=dict)  # only the A/B ones: challenger_fraction, split_key
    view: str = ""  # the view's name, for messages about it


@dataclass
class CreatedView:
    """A persistent ``CREATE VIEW`` over ML.PREDICT in the current database: sqlml owns its text."""

    name: str
    schema: str | None  # as written; None: the current schema
    catalog: str | None  # as written: sqlml owns the view only in the current database
    columns: list[str] | None  # ``CREATE VIEW v (a, b)``
    body_sql: str  # the view's query, each ML.PREDICT a placeholder table (ViewScoring.placeholder)
    replace: bool
    if_not_exists: bool


@dataclass
class Query:
    """Run ``sql`` after computing ``tables`` and filling in ``views``."""

    sql: str
    tables: list[TableFunction] = field(default_factory=list)
    views: list[ViewScoring] = field(default_factory=list)
    returns_rows: bool = True  # False for DDL, whose DuckDB result is only a count
    passthrough: str | None = None  # the statement is ``SELECT * FROM <this table function>``
    analytics: list[preprocessing.Analytic] = field(default_factory=list)  # ML.STANDARD_SCALER(x) OVER () ...
    rescanned: set[str] = field(default_factory=set)  # the tables ``sql`` may read more than once
    created_view: CreatedView | None = None  # the statement is a CREATE VIEW sqlml owns


@dataclass
class Train:
    name: str
    options: dict
    query_sql: str
    replace: bool
    if_not_exists: bool
    transform: list[str] | None = None
    analytics: list[preprocessing.Analytic] = field(default_factory=list)  # in the training query


@dataclass
class Drop:
    name: str
    if_exists: bool
    version: int | str | None = None  # DROP MODEL m VERSION n drops one version


@dataclass
class Alter:
    """ALTER MODEL: ``action`` is one of :data:`sqlml.sql.dialect.ALTER_ACTIONS`."""

    name: str
    action: str
    if_exists: bool
    options: dict = field(default_factory=dict)
    version: int | str | None = None
    alias: str | None = None


Step = t.Union[Query, Train, Drop, Alter]


def model_name(table: exp.Table) -> str:
    """A model's registry name, spelled as SQL: its dotted parts, unquoted ones lower-cased (``MODEL
    Delays`` is ``delays``); a part that is not a plain lower-case name stays double-quoted, so
    ``MODEL a.b`` (schema a, model b) and ``MODEL "a.b"`` (one name with a dot) are different models,
    and a stored name can be written after MODEL as it is."""
    return ".".join(_name_part(part.name if part.args.get("quoted") else part.name.lower()) for part in table.parts)


def _version(node: exp.Expr) -> int | str:
    """``VERSION 3`` → 3; ``VERSION challenger`` or ``VERSION 'challenger'`` → the alias 'challenger'."""
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    if isinstance(node, (exp.Column, exp.Identifier, exp.Var)) or (isinstance(node, exp.Literal) and node.is_string):
        return node.name
    raise SqlmlError(f"VERSION takes a version number or an alias; got {node.sql()}.")


def _name_part(text: str) -> str:
    return text if PLAIN_NAME.fullmatch(text) else '"' + text.replace('"', '""') + '"'


def _owned_view(statement: exp.Create, dialect: str) -> CreatedView | None:
    """The view a CREATE VIEW over ML.PREDICT makes, if sqlml may own it: a persistent one (a temporary
    view keeps a scoring function's call)."""
    target = statement.this
    table = target.this if isinstance(target, exp.Schema) else target
    if statement.find(exp.TemporaryProperty):
        return None
    columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else None
    return CreatedView(table.name, table.db or None, table.catalog or None, columns, statement.expression.sql(dialect),
                       bool(statement.args.get("replace")), bool(statement.args.get("exists")))


#: Statements DuckDB answers with an empty "Success" or "Count" relation: they have nothing to show.
NO_ROWS = (exp.Create, exp.Drop, exp.Alter, exp.Set, exp.Use, exp.Transaction, exp.Commit, exp.Rollback,
           exp.Attach, exp.Detach, exp.Install)


#: The same for statements sqlglot keeps as text (exp.Command), by their first word.
NO_ROWS_COMMANDS = {"ALTER", "ANALYZE", "ATTACH", "CHECKPOINT", "CREATE", "DETACH", "DROP", "EXPORT", "FORCE",
                    "IMPORT", "INSTALL", "LOAD", "RESET", "SET", "USE", "VACUUM",
                    "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"}  # plain statements are kept as text


def returns_rows(statement: exp.Expr) -> bool:
    """Whether a plain statement's result is worth showing (a query's rows, an INSERT's count)."""
    if isinstance(statement, exp.Command):
        return str(statement.this).split(maxsplit=1)[0].upper() not in NO_ROWS_COMMANDS
    return not isinstance(statement, NO_ROWS)


class Planner:
    """Plans statements for one engine dialect."""

    def __init__(self, dialect: str = "duckdb"):
        self.dialect = dialect
        self._counter = 0

    def plan(self, statement: exp.Expr) -> Step:
        if isinstance(statement, CreateModel):
            return self._train(statement)
        if isinstance(statement, DropModel):
            version = statement.args.get("version")
            return Drop(model_name(statement.this), bool(statement.args.get("exists")),
                        _version(version) if version is not None else None)
        if isinstance(statement, AlterModel):
            return self._alter(statement)
        return self._query(statement)

    def _train(self, statement: CreateModel) -> Train:
        query = statement.expression
        if query is None:
            raise SqlmlError("CREATE MODEL needs a training query: CREATE MODEL m OPTIONS (...) AS SELECT ...")
        if query.find(MLCall):
            raise SqlmlError("The training query of CREATE MODEL cannot call ML.* functions; "
                             "materialize their result in a table first.")
        transform = statement.args.get("transform")
        analytics = preprocessing.rewrite(query, self._name, False, self.dialect)
        preprocessing.finish(analytics, self.dialect)
        return Train(
            name=model_name(statement.this),
            options=options.options_to_dict(statement.args.get("options")),
            query_sql=query.sql(self.dialect),
            replace=bool(statement.args.get("replace")),
            if_not_exists=bool(statement.args.get("exists")),
            transform=[e.sql("sqlml") for e in transform] if transform else None,  # canonical: fitted, then stored
            analytics=analytics,
        )

    def _alter(self, statement: AlterModel) -> Alter:
        version, alias = statement.args.get("version"), statement.args.get("alias")
        step = Alter(model_name(statement.this), statement.args["action"], bool(statement.args.get("exists")),
                     version=_version(version) if version is not None else None,
                     alias=alias.name if alias is not None else None)
        if step.action == "set_options":
            step.options = options.options_to_dict(statement.args["options"])
            not_alterable = [k for k in step.options if k not in options.ALTERABLE]
            if not_alterable:
                raise SqlmlError(f"ALTER MODEL cannot change {', '.join(not_alterable)}; it can change "
                                 f"{', '.join(options.ALTERABLE)}. Train a new version with CREATE OR REPLACE MODEL "
                                 "instead.")
        return step

    def _query(self, statement: exp.Expr) -> Query:
        lazy = isinstance(statement, exp.Create) and statement.kind and statement.kind.upper() == "VIEW"
        step = Query(sql="", returns_rows=returns_rows(statement))
        step.analytics = preprocessing.rewrite(statement, self._name, lazy, self.dialect)
        for call in reversed(list(statement.find_all(MLCall))):
            replacement = self._lazy(call, step) if lazy else self._eager(call, step)
            target = call.parent if isinstance(call.parent, exp.Table) else call
            alias = target.args.get("alias") if isinstance(target, exp.Table) else None
            if alias is not None:
                replacement.set("alias", alias)
            target.replace(replacement)
        preprocessing.finish(step.analytics, self.dialect)
        step.rescanned = scans.read_more_than_once(statement, [table.name for table in step.tables])
        step.sql = statement.sql(self.dialect)
        if lazy and step.views:
            step.created_view = _owned_view(statement, self.dialect)
        if len(step.tables) == 1 and step.sql == f"SELECT * FROM {step.tables[0].name}":
            step.passthrough = step.tables[0].name
        return step

    def _eager(self, call: MLCall, step: Query) -> exp.Table:
        function = call.function
        if function not in catalog.AVAILABLE:
            raise SqlmlError(f"ML.{function} is not available yet. Available: "
                             f"{', '.join('ML.' + f for f in sorted(catalog.AVAILABLE))}.")
        if function in catalog.MODEL_ONLY and call.args.get("input") is not None:
            raise SqlmlError(f"ML.{function} takes only a model: ML.{function}(MODEL name).")
        model, last = call.args.get("model"), call.args.get("params")
        catalog.check_models(function, model is not None, call.args.get("model_b") is not None,
                             call.args.get("input") is not None)
        catalog.check_inputs(function, model is not None, call.args.get("input") is not None,
                             call.args.get("input_b") is not None)
        table = TableFunction(name=self._name(function), function=function,
                              model=self._model_ref(model) if model is not None else None,
                              input_sql=self._input_sql(call.args.get("input")),
                              model_b=self._model_ref(call.args["model_b"]) if call.args.get("model_b") else None,
                              input_b_sql=self._input_sql(call.args.get("input_b")))
        if isinstance(last, exp.Struct):
            table.params = catalog.check_params(function, constants.struct_fields(last, function))
        elif last is not None:
            table.argument = catalog.check_argument(function, constants.constant(last, function, "its last argument"))
        step.tables.append(table)
        return exp.to_table(table.name)

    def _lazy(self, call: MLCall, step: Query) -> exp.Table:
        if call.function != "PREDICT":
            raise SqlmlError(f"ML.{call.function} cannot be used inside CREATE VIEW: its result is computed when the "
                             "statement runs. Use CREATE TABLE ... AS instead.")
        catalog.check_models("PREDICT", True, call.args.get("model_b") is not None, True)
        catalog.check_inputs("PREDICT", True, True, call.args.get("input_b") is not None)
        last = call.args.get("params")
        params = catalog.check_params("PREDICT", constants.struct_fields(last, "PREDICT")) \
            if isinstance(last, exp.Struct) else {}
        if (last is not None and not isinstance(last, exp.Struct)) or set(params) - VIEW_PARAMS \
                or call.args.get("model") is None:
            raise SqlmlError("Inside CREATE VIEW, ML.PREDICT takes a model, input data and only the A/B parameters: "
                             "ML.PREDICT(MODEL m, TABLE t[, STRUCT(0.2 AS challenger_fraction, 'id' AS split_key)]); "
                             "set a threshold with ALTER MODEL.")
        if call.args.get("input") is None:
            raise SqlmlError("ML.PREDICT needs input data: ML.PREDICT(MODEL m, TABLE t) or (SELECT ...).")
        created = call.find_ancestor(exp.Create)
        view = ViewScoring(self._name("view"), self._model_ref(call.args["model"]), self._input_sql(call.args["input"]),
                           params, created.this.name if created is not None else "")
        step.views.append(view)
        return exp.to_table(view.placeholder)

    def _name(self, what: str) -> str:
        self._counter += 1
        return f"__sqlml_{what.lower()}_{self._counter}"

    def _model_ref(self, ref: ModelRef) -> ModelName:
        version = ref.args.get("version")
        return model_name(ref.this), _version(version) if version is not None else None

    def _input_sql(self, source: exp.Expr | None) -> str | None:
        if source is None:
            return None
        if isinstance(source, exp.Table):
            return exp.select("*").from_(source.copy()).sql(self.dialect)
        return source.sql(self.dialect)
