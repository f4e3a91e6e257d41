"""Row-level work on Spark's executors (``mapInArrow``), and the Arrow types the driver and executors agree on.

A batch function (with the models it holds) is serialized once on the driver with cloudpickle, as
Spark ships any Python function, and broadcast: each Python worker deserializes it once and keeps
it for every batch of every task it runs. It travels inside Spark's own channels (the trust boundary
of any PySpark UDF); what sqlml stores and reads back is only ever its signed skops bytes.
"""

from __future__ import annotations

import typing as t

import pyarrow as pa

if t.TYPE_CHECKING:
    from ..base import BatchFunction

#: Per Python worker: the batch functions already deserialized, by the id of their broadcast bytes
#: (the bytes are kept beside them, so an id is never reused while it is cached).
_LOADED: dict[int, tuple[bytes, "BatchFunction"]] = {}


def dumps(function: "BatchFunction") -> bytes:
    from pyspark import cloudpickle
    return cloudpickle.dumps(function)


def run(broadcast: t.Any, schema: pa.Schema, batches: t.Iterator[pa.RecordBatch]) -> t.Iterator[pa.RecordBatch]:
    """On an executor: the broadcast function over each record batch Spark hands it, typed as ``schema``
    (the output's columns, computed on the driver). BLAS and OpenMP get one thread: Spark runs one task
    per core already."""
    from threadpoolctl import threadpool_limits
    function = _function(broadcast.value)
    with threadpool_limits(1):
        for batch in batches:
            out = function(normalized(pa.Table.from_batches([batch])))
            yield from (out if out.schema == schema else out.cast(schema)).to_batches()


def streamed(frame: t.Any) -> t.Iterator[pa.RecordBatch]:
    """The rows of a DataFrame brought to the driver a partition at a time, as record batches: each
    executor writes its batches in Arrow's IPC format into one binary value, which Spark's local
    iterator hands over (``toArrow`` would hold every row at once)."""
    packed = frame.mapInArrow(_packed, "ipc binary")
    for row in packed.toLocalIterator(prefetchPartitions=True):
        with pa.ipc.open_stream(row[0]) as reader:
            yield from (normalized(pa.Table.from_batches([batch])).to_batches()[0] for batch in reader
                        if batch.num_rows)


def _packed(batches: t.Iterator[pa.RecordBatch]) -> t.Iterator[pa.RecordBatch]:
    for batch in batches:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        yield pa.record_batch([pa.array([sink.getvalue().to_pybytes()], pa.binary())], names=["ipc"])


def _function(value: bytes) -> "BatchFunction":
    held = _LOADED.get(id(value))
    if held is None or held[0] is not value:
        import pickle
        held = _LOADED[id(value)] = (value, pickle.loads(value))
    return held[1]


def normalized(table: pa.Table) -> pa.Table:
    """``table`` in the Arrow types sqlml reads (Spark hands out large strings, binaries and lists)."""
    schema = pa.schema([pa.field(f.name, _plain_type(f.type), f.nullable) for f in table.schema])
    return table if schema == table.schema else table.cast(schema)


def _plain_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_plain_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _plain_type(f.type), f.nullable) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(_plain_type(kind.key_type), _plain_type(kind.item_type))
    return kind


def plain(table: pa.Table) -> pa.Table:
    """``table`` as Spark takes it: dictionary-encoded columns decoded."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def arrow_schema(spark_schema: t.Any) -> pa.Schema:
    """The Arrow schema of Spark's, as the rows read come (every column nullable, as ``toArrow`` gives them)."""
    from pyspark.sql.pandas.types import to_arrow_schema
    schema = to_arrow_schema(spark_schema, timezone="UTC")
    return pa.schema([pa.field(f.name, _plain_type(f.type)) for f in schema])


def spark_schema(schema: pa.Schema) -> t.Any:
    from pyspark.sql.pandas.types import from_arrow_schema
    return from_arrow_schema(schema)


def python(value: t.Any) -> t.Any:
    """A value Spark collected, as DuckDB's fetch gives it (a struct as a dict, bytes as bytes, lists of them)."""
    from pyspark.sql import Row
    if isinstance(value, Row):
        return {k: python(v) for k, v in value.asDict().items()}
    if isinstance(value, list):
        return [python(v) for v in value]
    return bytes(value) if isinstance(value, bytearray) else value
