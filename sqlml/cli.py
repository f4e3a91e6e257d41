"""The ``sqlml`` command line: run SQL files against an embedded DuckDB database.

    sqlml run examples/penguins.sql --dataset penguins
    echo "SELECT * FROM ML.EVALUATE(MODEL m)" | sqlml run - --db models.duckdb
    sqlml models --db models.duckdb
    sqlml card late_model --db models.duckdb -o card.html
    sqlml serve --db models.duckdb --port 8000
    sqlml run train.sql --engine spark --spark-master spark://host:7077 --registry /shared/sqlml_registry
    sqlml models copy late_model --db models.duckdb --to-registry /shared/sqlml_registry

Exit codes: 0 success, 1 an error in the SQL, the data or the environment (``Error: …``), 2 usage.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import typing as t

import click

from . import datasets
from .errors import SqlmlError

FORMATS = ("table", "csv", "json")


def db_option(command: t.Callable) -> t.Callable:
    return click.option("--db", "db_path", default=":memory:", show_default=True,
                        help="DuckDB database file (`run` creates it if missing; `models` and `card` read an "
                             "existing one).")(command)


def user_errors(command: t.Callable) -> t.Callable:
    """Report sqlml errors as ``Error: …`` with exit code 1, never as a traceback."""
    @functools.wraps(command)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return command(*args, **kwargs)
        except SqlmlError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:  # training stores nothing until it has finished: say so, no traceback
            click.echo("\nInterrupted: nothing was stored.", err=True)
            sys.exit(130)
    return wrapper


@click.group()
@click.version_option(package_name="sqlml")
def main() -> None:
    """SQL-first machine learning inside DuckDB."""


@main.command()
@click.argument("file", type=click.File("r"))
@db_option
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--dialect", type=click.Choice(["duckdb", "bigquery"]), default="duckdb", show_default=True,
              help="The SQL dialect the statements are written in (bigquery: run BigQuery ML scripts as written).")
@click.option("--dataset", "dataset_names", multiple=True, type=click.Choice(sorted(datasets.DATASETS)),
              help="Load a packaged real dataset as a table first (repeatable).")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the statements run (spark: docs/scale_out.md; --db is then not used).")
@click.option("--spark-master", help="With --engine spark: the cluster's master URL (default: local[*], this machine).")
@click.option("--registry", "registry_path", help="With --engine spark: the folder of the model registry "
              "(default: ./sqlml_registry); on a cluster, one every session reaches.")
@user_errors
def run(file: t.TextIO, db_path: str, output_format: str, dialect: str, dataset_names: tuple[str, ...], engine: str,
        spark_master: str | None, registry_path: str | None) -> None:
    """Run every statement in FILE ('-' for stdin) and print each result."""
    import sqlml
    from .progress import Progress
    progress = Progress()
    text = file.read()
    if engine == "duckdb" and db_path != ":memory:" and not os.path.exists(db_path):
        click.echo(f"Creating new database {os.path.abspath(db_path)} (no file at --db {db_path} yet).", err=True)
    if engine == "spark":
        from .engines.spark import local_session
        connected = sqlml.connect(progress=progress, dialect=dialect, engine="spark", registry=registry_path,
                                  spark=local_session(spark_master) if spark_master else None)
    else:
        connected = sqlml.connect(db_path, progress=progress, dialect=dialect)
    with connected as conn:
        for name in dataset_names:
            datasets.load(conn, name)
        statements = sqlml.parse(text, dialect)
        for statement in statements:
            try:
                result = conn.executor.run_step(conn.executor.planner.plan(statement))
            except SqlmlError as e:
                if len(statements) == 1:
                    raise
                # DuckDB's "LINE 1" counts from the failing statement, not from the top of the file
                raise SqlmlError(f"Statement at line {statement.meta['line']}: {e}") from None
            progress.clear()
            if result is not None:
                print_result(result, output_format)
                warn_if_below_baseline(result)


@main.group(invoke_without_command=True)
@db_option
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.pass_context
@user_errors
def models(ctx: click.Context, db_path: str, output_format: str) -> None:
    """List the models in the registry, one row per version: whether it is the deployed one, the
    aliases naming it, whether the model is disabled (its kill switch), and the version's status.
    `sqlml models copy` copies one to Spark's registry."""
    if ctx.invoked_subcommand is not None:
        return
    import sqlml
    existing_database(db_path, "models")
    with sqlml.connect(db_path, read_only=True, create=False) as conn:
        if not conn.executor.registry.exists():
            click.echo("No models yet.", err=True)
            return
        listed = conn.models().select("name, version, deployed, aliases, disabled, model_type, label, training_rows, "
                                      "eval_rows, created_at, options->>'expiration_timestamp' AS expiration_timestamp, "
                                      "options->'labels' AS labels, status")
        print_result(listed, output_format)


@models.command("copy")
@click.argument("name")
@click.option("--db", "db_path", required=True, help="The DuckDB database the model is copied from (read only).")
@click.option("--to-registry", "registry_path", required=True,
              help="The folder of the Spark registry to copy it to (sqlml run --engine spark --registry PATH).")
@click.option("--version", "version", help="The version to copy: a number or an alias (default: the deployed one).")
@click.option("--spark-master", help="The Spark session's master URL (default: local[*], this machine).")
@user_errors
def models_copy(name: str, db_path: str, registry_path: str, version: str | None, spark_master: str | None) -> None:
    """Copy model NAME from a DuckDB database to a Spark registry, verified on read and signed there with
    the same key; it then scores on Spark as on DuckDB (docs/scale_out.md)."""
    import sqlml
    from .engines.spark import local_session
    from .registry.transfer import read_version, store_copy
    existing_database(db_path, f"models copy {name}")
    chosen = int(version) if version is not None and version.isdigit() else version
    with sqlml.connect(db_path, read_only=True, create=False) as source:  # verified before Spark starts
        copied = read_version(source.executor.registry, name, chosen)
    with sqlml.connect(engine="spark", registry=registry_path, spark=local_session(spark_master or "local[*]"),
                       progress=lambda message: None) as target:
        number, deployed = store_copy(target.executor.registry, copied, f"DuckDB database {os.path.abspath(db_path)}")
    how = "deployed" if deployed else f"not deployed: deploy it with ALTER MODEL {name} DEPLOY VERSION {number}"
    click.echo(f"Copied model '{name}' from {db_path} to the Spark registry at {registry_path} as version "
               f"{number} ({how}).", err=True)


@main.group()
def key() -> None:
    """The secret key that signs models (SQLML_KEY_FILE, else ~/.config/sqlml/secret.key)."""


@key.command("create")
@user_errors
def key_create() -> None:
    """Create a new random key file. Models signed with another key cannot be read with it."""
    from .model import envelope
    click.echo(f"Created a new secret key at {envelope.create_key()}.", err=True)


@main.command()
@click.argument("model")
@db_option
@click.option("-o", "--output", default="card.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write.")
@click.option("--data", "data_sql", help="Evaluate on this query instead of the evaluation split kept at training.")
@click.option("--slice-by", multiple=True, help="Add a sliced evaluation by this column (repeatable; needs --data).")
@click.option("--sensitive-col", help="Add fairness figures for this column (needs --data).")
@click.option("--time-column", help="Add the evaluation over time, by windows of this DATE or TIMESTAMP column (needs --data).")
@click.option("--time-window", help="The windows of --time-column: day, week, month (the default), quarter or year.")
@user_errors
def card(model: str, db_path: str, output: str, data_sql: str | None, slice_by: tuple[str, ...],
         sensitive_col: str | None, time_column: str | None, time_window: str | None) -> None:
    """Write MODEL's model card as a self-contained HTML file (see docs/model_cards.md)."""
    import sqlml

    if time_window and not time_column:
        raise click.UsageError("--time-window needs --time-column: the DATE or TIMESTAMP column to window by.")

    from .functions.card import card_query
    existing_database(db_path, f"card {model}")
    with sqlml.connect(db_path, read_only=True, create=False) as conn:
        (html,) = conn.sql(card_query(model, data_sql, slice_by, sensitive_col, time_column=time_column,
                                       time_window=time_window)).fetchall()[0]
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(html)
    except OSError as e:
        raise click.ClickException(f"Cannot write the model card to {output}: {e.strerror}.") from None
    click.echo(f"Model card of '{model}' written to {output}.", err=True)


@main.command()
@click.option("--db", "db_path", required=True, help="The DuckDB database whose models to serve (never held open).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (not loopback: needs SQLML_SERVE_TOKEN).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Worker processes.")
@click.option("--model", help="The model POST /invocations (MLflow's protocol) scores when no sqlml-model header names one.")
@click.option("--max-body-bytes", default=10_000_000, show_default=True, type=click.IntRange(1))
@click.option("--max-rows", default=100_000, show_default=True, type=click.IntRange(1), help="Rows per request.")
@click.option("--refresh", default=1.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds between looks at the database file for new deployments.")
@user_errors
def serve(db_path: str, host: str, port: int, workers: int, model: str | None, max_body_bytes: int, max_rows: int,
          refresh: float) -> None:
    """Score over HTTP with the models of a database (see docs/serving.md)."""
    from .server import Settings, serve as run_server
    run_server(Settings(os.path.abspath(db_path), model, max_body_bytes, max_rows, refresh), host, port, workers)


def existing_database(db_path: str, command: str) -> None:
    """``models`` and ``card`` read the models of a database file: refuse none given, or a missing one."""
    if db_path == ":memory:":
        raise click.UsageError(f"No database given: name the file whose models to read, e.g. "
                               f"sqlml {command} --db warehouse.duckdb.")
    if not os.path.exists(db_path):
        raise click.ClickException(f"No database file at '{db_path}' (working directory {os.getcwd()}). Check the "
                                   "path; `sqlml run FILE --db PATH` creates a database.")


def warn_if_below_baseline(relation: t.Any) -> None:
    """An evaluation that does not beat its baseline must be impossible to miss."""
    if "beats_baseline" not in relation.columns:
        return
    rows = _arrow(relation).to_pylist()
    losing = sorted({r.get("primary_metric") or "its primary metric" for r in rows if r["beats_baseline"] is False})
    if losing:
        click.secho(f"Warning: the model does NOT beat its trivial baseline on {', '.join(losing)} "
                    f"({sum(r['beats_baseline'] is False for r in rows)} of {len(rows)} evaluation rows). "
                    "See docs/evaluation.md.", err=True, fg="red", bold=True)


def print_result(relation: t.Any, output_format: str) -> None:
    """Print a DuckDB relation as a table (one row as a list of name and value, so that no column is
    hidden), CSV (nested values as JSON) or JSON lines."""
    table = _arrow(relation)  # run once: DuckDB's renderer would run the query again
    if output_format == "table":
        if table.num_rows == 1:
            print_vertical(table.to_pylist()[0])
        else:  # every column asked for, however wide; a terminal wraps the lines
            import duckdb  # DuckDB's renderer (loaded only to print a table, on either engine)
            duckdb.connect().from_arrow(table).show(max_width=WIDEST)
        return
    rows = table.to_pylist()
    if output_format == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    writer = csv.writer(click.get_text_stream("stdout"), lineterminator="\n")
    writer.writerow(relation.columns)
    for row in rows:
        writer.writerow([_text(v) for v in row.values()])


WIDEST = 100_000  # characters: DuckDB hides the columns beyond its max_width


def _arrow(result: t.Any) -> t.Any:
    """A result as an Arrow table: a DuckDB relation, or a Spark DataFrame (``--engine spark``)."""
    return result.toArrow() if hasattr(result, "toArrow") else result.to_arrow_table()


def print_vertical(row: dict) -> None:
    width = max(map(len, row))
    for name, value in row.items():
        shown = "NULL" if value is None else str(value).lower() if isinstance(value, bool) else _text(value)
        click.echo(f"{name:<{width}}  {shown}")
    click.echo("")


def _text(value: t.Any) -> t.Any:
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else value


if __name__ == "__main__":  # python -m sqlml.cli
    main()
