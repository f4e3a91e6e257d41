"""The sqlml SQL dialect: DuckDB's dialect plus BigQuery ML statements and ``ML.*`` functions.

Registered with sqlglot under the name ``sqlml``::

    >>> import sqlglot, sqlml.dialect
    >>> sqlglot.parse_one("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)", read="sqlml").sql("sqlml")
    'SELECT * FROM ML.PREDICT(MODEL m, TABLE t)'

AST nodes only hold data; what they mean is decided by :mod:`sqlml.planner`.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.helper import seq_get
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokens import TokenType

#: Every ``ML.<name>(...)`` table function the dialect parses. The planner decides which exist.
ML_FUNCTIONS = (
    "PREDICT",
    "EVALUATE",
    "CONFUSION_MATRIX",
    "ROC_CURVE",
    "TRAINING_INFO",
    "FEATURE_INFO",
    "WEIGHTS",
    "EXPLAIN_PREDICT",
    "GLOBAL_EXPLAIN",
    "FEATURE_IMPORTANCE",
    "THRESHOLD_METRICS",
    "TRIAL_INFO",
    "LEADERBOARD",
    "BASELINE",
    "TRANSFORM",
    "DESCRIBE_DATA",
    "FAIRNESS",
    "MODEL_CARD",
    "VALIDATE_DATA_DRIFT",
    "VALIDATE_DATA_SKEW",
    "COMPARE",
    "ESTIMATE_PERFORMANCE",
    "REVIEW_QUEUE",
    "RECOMMEND",
    "GENERATE_EMBEDDING",
    "PRINCIPAL_COMPONENTS",
    "PRINCIPAL_COMPONENT_INFO",
    "RECONSTRUCTION_LOSS",
    "DETECT_ANOMALIES",
    "FORECAST",
    "EXPLAIN_FORECAST",
    "ARIMA_EVALUATE",
    "ARIMA_COEFFICIENTS",
    "HOLIDAY_INFO",
    "GENERATE_SQL",
)
#: ``AI.<name>(...)``: BigQuery's newer prefix for these, parsed as their ``ML.`` names.
AI_FUNCTIONS = ("GENERATE_EMBEDDING",)


class ModelRef(exp.Expression):
    """``MODEL name [VERSION n | VERSION 'alias']``."""

    arg_types = {"this": True, "version": False}


class MLCall(exp.Expression, exp.Func):
    """``ML.<name>([MODEL m] [, MODEL m2] [, TABLE t | (query)] [, TABLE t2 | (query)] [, STRUCT(...) | other
    argument])``; a second model (``model_b``) only for ML.COMPARE, second data (``input_b``) only for
    ML.VALIDATE_DATA_DRIFT, which the planner checks."""

    arg_types = {"this": True, "model": False, "model_b": False, "input": False, "input_b": False, "params": False}

    @property
    def function(self) -> str:
        return self.this.name.upper()


class GenerateArray(exp.Expression, exp.Func):
    """BigQuery's ``GENERATE_ARRAY(start, end, step)``, inclusive, for numbers with fractions too; used for
    ML.ROC_CURVE thresholds. Written as ``GENERATE_ARRAY(...)`` here; each engine's dialect writes it in
    its own words (:mod:`sqlml.sql.nodes`)."""

    arg_types = {"this": True, "expression": True, "step": False}


class CreateModel(exp.Expression):
    """``CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name [TRANSFORM (...)] OPTIONS (...) AS query``."""

    arg_types = {
        "this": True,
        "options": False,
        "expression": False,
        "replace": False,
        "exists": False,
        "transform": False,
    }


class DropModel(exp.Expression):
    """``DROP MODEL [IF EXISTS] name [VERSION n]``."""

    arg_types = {"this": True, "exists": False, "version": False}


#: What ALTER MODEL does: SET OPTIONS, or one of the release statements (docs/release.md).
ALTER_ACTIONS = ("set_options", "deploy", "rollback", "disable", "enable", "set_alias", "unset_alias")


class AlterModel(exp.Expression):
    """``ALTER MODEL [IF EXISTS] name`` then ``SET OPTIONS (...)`` | ``DEPLOY VERSION n`` | ``ROLLBACK`` |
    ``DISABLE`` | ``ENABLE`` | ``UNSET ALIAS a``; or ``ALTER MODEL name VERSION n SET ALIAS a``."""

    arg_types = {"this": True, "action": True, "options": False, "exists": False, "version": False, "alias": False}


def _parse_ml_call(self: DuckDBParser, name: str) -> exp.Expr:
    """Parse the argument list of ``ML.<name>(``; other functions with the same name parse as usual."""
    prefix = self._tokens[self._index - 4].text.upper() if self._index >= 4 else ""
    if not (prefix == "ML" or (prefix == "AI" and name in AI_FUNCTIONS)):
        return self.expression(exp.Anonymous(this=name, expressions=self._parse_csv(self._parse_lambda)))
    call = MLCall(this=exp.var(name))
    while self._curr and not self._match(TokenType.R_PAREN, advance=False):
        if self._match_text_seq("MODEL"):
            if call.args.get("model_b"):
                self.raise_error(f"ML.{name} takes at most two MODEL arguments")
            call.set("model_b" if call.args.get("model") else "model", _parse_model_ref(self))
        elif self._match(TokenType.TABLE):
            _set_input(self, call, name, self._parse_table_parts())
        elif self._curr.token_type == TokenType.L_PAREN and self._next and self._next.token_type in (
            TokenType.SELECT,
            TokenType.WITH,
            TokenType.L_PAREN,
        ):
            _set_input(self, call, name, self._parse_wrapped(self._parse_select))
        else:
            call.set("params", self._parse_bitwise())
        if not self._match(TokenType.COMMA):
            break
    # The caller consumes the closing parenthesis but does not insist on it.
    if not self._match(TokenType.R_PAREN, advance=False):
        self.raise_error("Expecting )")
    return call


def _set_input(self: DuckDBParser, call: MLCall, name: str, source: exp.Expr | None) -> None:
    """The first data argument is ``input``, a second one ``input_b`` (ML.VALIDATE_DATA_DRIFT's study data)."""
    if call.args.get("input_b"):
        self.raise_error(f"ML.{name} takes at most two data arguments")
    call.set("input_b" if call.args.get("input") else "input", source)


def _parse_model_name(self: DuckDBParser) -> exp.Table:
    name = self._parse_table_parts()
    if isinstance(name, exp.Table) and len(name.parts) > 3:
        self.raise_error(f"Expecting a model name of at most three parts (project.dataset.model); got {name.sql()}")
    return name


def _split_backtick_path(self: DuckDBParser, parse: t.Callable[[], exp.Expr | None]) -> exp.Expr | None:
    """A backtick-quoted name is a BigQuery path (`` `project.dataset.table` ``) whose dots separate
    its parts; a double-quoted one is one name, dots and all (DuckDB's rule)."""
    first = self._curr
    backticked = (first is not None and first.token_type == TokenType.IDENTIFIER and "." in first.text
                  and self.sql[first.start:first.start + 1] == "`")
    table = parse()
    if not backticked or not isinstance(table, exp.Table):
        return table
    parts = [exp.to_identifier(piece, quoted=True) for part in table.parts for piece in part.name.split(".")]
    if not all(p.name for p in parts):
        self.raise_error(f"Expecting a name between the dots of `{first.text}`")
    table.set("this", parts[-1])
    table.set("db", seq_get(parts, -2) if len(parts) > 1 else None)
    table.set("catalog", exp.Dot.build(parts[:-2]) if len(parts) > 3 else seq_get(parts, -3) if len(parts) > 2 else None)
    return table


def _parse_model_ref(self: DuckDBParser) -> ModelRef:
    name = _parse_model_name(self)
    version = _parse_version(self) if self._match_text_seq("VERSION") else None
    return ModelRef(this=name, version=version)


def _parse_options(self: DuckDBParser) -> list[exp.Expr]:
    """``OPTIONS (name = value, ...)``; a trailing comma before the parenthesis is allowed, as in BigQuery."""
    if not self._match_text_seq("OPTIONS"):
        return []
    self._match_l_paren()
    options = []
    while not self._match(TokenType.R_PAREN):
        options.append(_parse_option(self))
        if not self._match(TokenType.COMMA):
            self._match_r_paren()
            break
    return options


def _parse_option(self: DuckDBParser) -> exp.Property:
    name = self._parse_id_var(any_token=True)
    if not name or not self._match(TokenType.EQ):
        self.raise_error("Expecting name = value in OPTIONS")
    value = self._parse_bitwise()
    if value is None:
        self.raise_error(f"Option '{name.name}' needs a value: {name.name} = <value>")
    return exp.Property(this=exp.var(name.name), value=value)


def _generate_array(args: list[exp.Expr]) -> GenerateArray:
    if not 2 <= len(args) <= 3:
        raise ParseError(f"GENERATE_ARRAY takes (start, end[, step]); got {len(args)} argument(s).")
    return GenerateArray(this=args[0], expression=args[1], step=seq_get(args, 2))


def _parse_create(self: DuckDBParser) -> exp.Expr | None:
    start = self._index
    replace = self._match_pair(TokenType.OR, TokenType.REPLACE)
    if not self._match_text_seq("MODEL"):
        self._retreat(start)
        return self._parse_create()
    exists = self._parse_exists(not_=True)
    name = _parse_model_name(self)
    transform = None
    if self._match_text_seq("TRANSFORM"):
        transform = self._parse_wrapped_csv(self._parse_expression)
    options = _parse_options(self)
    query = self._parse_select(nested=True) if self._match(TokenType.ALIAS) else None
    if query is None and self._prev.token_type == TokenType.ALIAS:
        self.raise_error("Expecting a query after AS")
    return self.expression(
        CreateModel(this=name, options=options, expression=query, replace=replace, exists=exists, transform=transform)
    )


def _parse_drop(self: DuckDBParser) -> exp.Expr | None:
    if not self._match_text_seq("MODEL"):
        return self._parse_drop()
    exists = self._parse_exists()
    name = _parse_model_name(self)
    version = _parse_version(self) if self._match_text_seq("VERSION") else None
    return self.expression(DropModel(this=name, exists=exists, version=version))


def _parse_alter(self: DuckDBParser) -> exp.Expr | None:
    if not self._match_text_seq("MODEL"):
        return self._parse_alter()
    alter = AlterModel(this=None, action=None, exists=self._parse_exists())
    alter.set("this", _parse_model_name(self))
    if self._match_text_seq("VERSION"):
        alter.set("version", _parse_version(self))
        if not self._match_text_seq("SET", "ALIAS"):
            self.raise_error("Expecting SET ALIAS name after ALTER MODEL name VERSION n")
        alter.set("action", "set_alias")
        alter.set("alias", _parse_alias_name(self))
    elif self._match(TokenType.SET):
        alter.set("action", "set_options")
        alter.set("options", _parse_options(self))
        if not alter.args["options"]:
            self.raise_error("Expecting OPTIONS (...) after ALTER MODEL name SET")
    elif self._match_text_seq("DEPLOY", "VERSION"):
        alter.set("action", "deploy")
        alter.set("version", _parse_version(self))
    elif self._match_text_seq("UNSET", "ALIAS"):
        alter.set("action", "unset_alias")
        alter.set("alias", _parse_alias_name(self))
    else:
        word = next((w for w in ("ROLLBACK", "DISABLE", "ENABLE") if self._match_text_seq(w)), None)
        if word is None:
            self.raise_error("Expecting SET OPTIONS (...), DEPLOY VERSION n, ROLLBACK, DISABLE, ENABLE, "
                             "UNSET ALIAS a or VERSION n SET ALIAS a after ALTER MODEL name")
        alter.set("action", (word or "").lower())
    return self.expression(alter)


def _parse_version(self: DuckDBParser) -> exp.Expr:
    """A version number, or an alias (``VERSION challenger`` / ``VERSION 'challenger'``)."""
    version = self._parse_primary() or self._parse_id_var(any_token=False)
    if version is None:
        self.raise_error("Expecting a version number or alias after VERSION")
    return version


def _parse_alias_name(self: DuckDBParser) -> exp.Expr:
    alias = self._parse_id_var(any_token=False) or self._parse_string()
    if alias is None:
        self.raise_error("Expecting an alias name (e.g. champion, challenger)")
    return alias


def _sqlml_parsers(base: type) -> tuple[dict, dict, dict]:
    """``FUNCTIONS``, ``FUNCTION_PARSERS`` and ``STATEMENT_PARSERS`` of ``base`` (a sqlglot parser)
    with sqlml's statements and functions added."""
    return (
        {**base.FUNCTIONS, "GENERATE_ARRAY": lambda args: _generate_array(args)},
        {**base.FUNCTION_PARSERS, **{name: (lambda n: lambda self: _parse_ml_call(self, n))(name) for name in ML_FUNCTIONS}},
        {**base.STATEMENT_PARSERS, TokenType.CREATE: _parse_create, TokenType.DROP: _parse_drop,
         TokenType.ALTER: _parse_alter},
    )


class SqlmlParser(DuckDBParser):
    FUNCTIONS, FUNCTION_PARSERS, STATEMENT_PARSERS = _sqlml_parsers(DuckDBParser)

    def _parse_table_parts(self, *args: t.Any, **kwargs: t.Any) -> exp.Expr | None:
        return _split_backtick_path(self, lambda: super(SqlmlParser, self)._parse_table_parts(*args, **kwargs))
def _options_sql(self: DuckDBGenerator, options: list[exp.Expr]) -> str:
    return f" OPTIONS ({self.expressions(sqls=[self.sql(o) for o in options], flat=True)})" if options else ""


def _model_ref_sql(self: DuckDBGenerator, e: ModelRef) -> str:
    version = f" VERSION {self.sql(e, 'version')}" if e.args.get("version") else ""
    return f"MODEL {self.sql(e, 'this')}{version}"


def _ml_call_sql(self: DuckDBGenerator, e: MLCall) -> str:
    args = [self.sql(e, key) for key in ("model", "model_b") if e.args.get(key)]
    for source in (e.args.get("input"), e.args.get("input_b")):
        if isinstance(source, exp.Table):
            args.append(f"TABLE {self.sql(source)}")
        elif source:
            args.append(f"({self.sql(source)})")
    if e.args.get("params"):
        args.append(self.sql(e, "params"))
    # Inside FROM, sqlglot keeps the ``ML.`` prefix on the enclosing Table node.
    parent = e.parent
    prefix = "" if isinstance(parent, exp.Table) and parent.text("db").upper() in ("ML", "AI") else "ML."
    return f"{prefix}{e.function}({', '.join(args)})"


def _create_model_sql(self: DuckDBGenerator, e: CreateModel) -> str:
    replace = " OR REPLACE" if e.args.get("replace") else ""
    exists = " IF NOT EXISTS" if e.args.get("exists") else ""
    transform = e.args.get("transform")
    transform_sql = f" TRANSFORM ({self.expressions(sqls=[self.sql(x) for x in transform], flat=True)})" if transform else ""
    query = f" AS {self.sql(e, 'expression')}" if e.args.get("expression") else ""
    return f"CREATE{replace} MODEL{exists} {self.sql(e, 'this')}{transform_sql}{_options_sql(self, e.args.get('options'))}{query}"


def _alter_model_sql(self: DuckDBGenerator, e: AlterModel) -> str:
    head = f"ALTER MODEL{' IF EXISTS' if e.args.get('exists') else ''} {self.sql(e, 'this')}"
    action = e.args["action"]
    tail = {"set_options": lambda: f" SET{_options_sql(self, e.args['options'])}",
            "deploy": lambda: f" DEPLOY VERSION {self.sql(e, 'version')}",
            "set_alias": lambda: f" VERSION {self.sql(e, 'version')} SET ALIAS {self.sql(e, 'alias')}",
            "unset_alias": lambda: f" UNSET ALIAS {self.sql(e, 'alias')}"}.get(action, lambda: f" {action.upper()}")
    return head + tail()


def _property_sql(self: DuckDBGenerator, e: exp.Property) -> str:
    return f"{self.sql(e, 'this')} = {self.sql(e, 'value')}"


class SqlmlGenerator(DuckDBGenerator):
    TRANSFORMS = {
        **DuckDBGenerator.TRANSFORMS,
        ModelRef: _model_ref_sql,
        MLCall: _ml_call_sql,
        CreateModel: _create_model_sql,
        DropModel: lambda self, e: (f"DROP MODEL{' IF EXISTS' if e.args.get('exists') else ''} {self.sql(e, 'this')}"
                                    + (f" VERSION {self.sql(e, 'version')}" if e.args.get("version") else "")),
        AlterModel: _alter_model_sql,
    }

    def property_sql(self, expression: exp.Property) -> str:
        if isinstance(expression.parent, (CreateModel, AlterModel)):
            return _property_sql(self, expression)
        return super().property_sql(expression)


class SqlmlTokenizer(DuckDB.Tokenizer):
    IDENTIFIERS = ['"', "`"]  # BigQuery's backtick-quoted names, as every BigQuery ML example writes them


class Sqlml(DuckDB):
    """DuckDB's dialect extended with CREATE/DROP/ALTER MODEL and the ML.* table functions: the dialect
    statements are read in, and sqlml's canonical form of SQL it stores (a model's compiled TRANSFORM),
    which each engine's own dialect writes for it (``engines/*/dialect.py``)."""

    Tokenizer = SqlmlTokenizer
    Parser = SqlmlParser
    Generator = SqlmlGenerator


#: The input dialects users name (``--dialect``, ``sqlml.connect(dialect=...)``) → sqlglot dialect names
#: ('sqlmlbigquery' is defined in sql/dialect_bigquery.py, imported when a statement is read as BigQuery).
INPUT_DIALECTS = {"duckdb": "sqlml", "bigquery": "sqlmlbigquery"}
