"""sqlml for dbt: the Python half of the dbt package whose macros live in the repository's ``macros/``.

Two pieces, both used by dbt-duckdb in the dbt process:

* :mod:`sqlml.dbt.job` runs the sqlml statements of the ``sqlml_model``, ``sqlml_table`` and
  ``sqlml_view`` materializations on the dbt thread's own DuckDB cursor;
* :mod:`sqlml.dbt.plugin` is a dbt-duckdb plugin that defines the scoring function of every stored
  model version when dbt opens the database, so views over ``ML.PREDICT`` can be read by any model.
"""
