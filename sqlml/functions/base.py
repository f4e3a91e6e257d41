"""What every ML.* handler shares: the :class:`Call` it receives and the typed table of evaluation rows."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import pyarrow as pa

from ..engines.duckdb import DuckDBEngine
from ..errors import SqlmlError
from ..model.loaded import LoadedModel


@dataclass
class Call:
    """One ML.* call with its model loaded, its input as SQL and its parameters as Python values."""

    function: str
    engine: "DuckDBEngine"
    model: "LoadedModel | None" = None
    input_sql: str | None = None
    params: dict = field(default_factory=dict)
    argument: t.Any = None  # a non-STRUCT last argument, e.g. GENERATE_ARRAY(...) for ML.ROC_CURVE

    def require_model(self) -> "LoadedModel":
        if self.model is None:
            raise SqlmlError(f"ML.{self.function} needs a MODEL argument: ML.{self.function}(MODEL name, ...).")
        return self.model

    def require_input(self) -> str:
        if self.input_sql is None:
            raise SqlmlError(f"ML.{self.function} needs input data: ML.{self.function}(MODEL m, TABLE t) or (SELECT ...).")
        return self.input_sql

    def input_table(self) -> pa.Table:
        return self.engine.read_arrow(self.require_input())

    def param(self, name: str, default: t.Any = None) -> t.Any:
        return self.params.get(name, default)


TEXT_COLUMNS = ("slice_column", "slice_value", "baseline_strategy", "primary_metric")
BOOL_COLUMNS = ("beats_baseline", "unreliable", "worse_than_overall")


def as_table(rows: list[dict], extra: list[pa.Field] = ()) -> pa.Table:
    """Rows as a table with fixed types: metrics DOUBLE (NULL when undefined), flags BOOLEAN."""
    fields = {f.name: f for f in extra}
    for name in rows[0]:
        if name not in fields:
            kind = (pa.string() if name in TEXT_COLUMNS else pa.bool_() if name in BOOL_COLUMNS
                    else pa.int64() if name == "row_count" else pa.float64())
            fields[name] = pa.field(name, kind)
    return pa.Table.from_pylist(rows, schema=pa.schema(list(fields.values())))
