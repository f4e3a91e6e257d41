"""sqlml for dbt: the Python half of the dbt package whose macros live in the repository's ``macros/``.

Three pieces, all used by dbt-duckdb in the dbt process (see docs/dbt.md):

* :mod:`sqlml.dbt.plugin` is the dbt-duckdb plugin (``plugins: [{module: sqlml.dbt.plugin, alias: sqlml}]``):
  it creates the registry and audit tables and defines, on dbt's long-lived connection, the scoring
  function of every stored model version and the functions of :mod:`sqlml.dbt.macro_sql`;
* :mod:`sqlml.dbt.macro_sql` turns a table-expression macro call (``sqlml.predict``,
  ``sqlml.evaluate``, ...) into plain DuckDB SQL;
* :mod:`sqlml.dbt.job` runs the sqlml statements of the ``sqlml_model``, ``sqlml_table`` and
  ``sqlml_view`` materializations on the dbt thread's own DuckDB cursor.

On dbt-spark (``method: session``), :mod:`sqlml.dbt.spark` routes the materializations' statements to
sqlml's Spark engine on the session dbt uses.
"""
