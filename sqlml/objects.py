"""A model as a Python object: ``conn.model("delays")``. Every method is a thin wrapper over one SQL
statement a user could run (named in its docstring) and returns a pandas DataFrame; the object
shows itself as HTML in Jupyter and as a short summary in a terminal.

    delays = conn.model("delays")
    delays                       # versions, what is deployed, metrics beside the baseline
    delays.predict(frame)        # SELECT * FROM ML.PREDICT(MODEL delays, TABLE frame)
    delays.card()                # ML.MODEL_CARD(MODEL delays, STRUCT('html' AS format)), inline
"""

from __future__ import annotations

import html
import typing as t

from .calls import ml_call

if t.TYPE_CHECKING:
    import pandas as pd

    from .connection import Connection

FRAME = "__sqlml_frame"  # the name a DataFrame argument is read under, for one statement


class Model:
    """A model of the registry (by name: every call reads what is stored now)."""

    def __init__(self, conn: "Connection", name: str):
        self.conn, self.name = conn, name
        conn.executor.registry.resolve(name)  # an unknown model is refused now, with the names known

    def versions(self) -> "pd.DataFrame":
        """One row per stored version: deployed, aliases, disabled, status … (``conn.models()``, this model's rows)."""
        frame = self.conn.models().df()
        return frame[frame["name"] == self.name].reset_index(drop=True)

    @property
    def deployed(self) -> int:
        """The version ``MODEL name`` serves."""
        versions = self.versions()
        return int(versions.loc[versions["deployed"], "version"].iloc[0])

    @property
    def options(self) -> dict:
        """The deployed version's OPTIONS, as stored."""
        return dict(self.conn.executor.registry.resolve(self.name).options or {})

    def metrics(self) -> "pd.DataFrame":
        """ML.EVALUATE(MODEL name) regrouped: one row per metric, the model's value beside its baseline's and the lift."""
        import pandas as pd
        row = self.evaluate().iloc[0].to_dict()
        names = [k for k in row if f"lift_{k}" in row]
        return pd.DataFrame({"metric": names, "model": [row[k] for k in names],
                             "baseline": [row[f"baseline_{k}"] for k in names], "lift": [row[f"lift_{k}"] for k in names]})

    def predict(self, data: t.Any, **settings: t.Any) -> "pd.DataFrame":
        """``SELECT * FROM ML.PREDICT(MODEL name, data[, STRUCT(settings)])``; ``data`` is a DataFrame (pandas,
        pyarrow, polars), a table name or a SELECT."""
        return self._run("PREDICT", data, settings)

    def evaluate(self, data: t.Any = None, **settings: t.Any) -> "pd.DataFrame":
        """``SELECT * FROM ML.EVALUATE(MODEL name[, data][, STRUCT(settings)])`` (without data: the evaluation split kept at training)."""
        return self._run("EVALUATE", data, settings)

    def explain(self, data: t.Any, **settings: t.Any) -> "pd.DataFrame":
        """``SELECT * FROM ML.EXPLAIN_PREDICT(MODEL name, data[, STRUCT(settings)])``, e.g. ``top_k_features=3``."""
        return self._run("EXPLAIN_PREDICT", data, settings)

    def card(self, data: t.Any = None, **settings: t.Any) -> "Card":
        """``ML.MODEL_CARD(MODEL name[, data], STRUCT('html' AS format, settings…))``: shown inline in Jupyter."""
        frame = self._run("MODEL_CARD", data, {"format": "html", **settings})
        return Card(frame["model_card"].iloc[0])

    def _run(self, function: str, data: t.Any, settings: dict) -> "pd.DataFrame":
        namespace = None
        if data is not None and not isinstance(data, str):  # a data frame: read by name for this statement
            namespace, data = {FRAME: data}, FRAME
        call = ml_call(function, self.name, data, settings)
        return self.conn.sql(f"SELECT * FROM {call}", namespace=namespace or {}).df()

    def _summary(self) -> tuple[str, "pd.DataFrame", "pd.DataFrame | None"]:
        versions = self.versions()
        latest = versions.iloc[-1]
        deployed = versions[versions["deployed"]]
        state = (f"version {int(deployed['version'].iloc[0])} deployed" if len(deployed) else "nothing deployed")
        if bool(latest["disabled"]):
            state += ", DISABLED (ML.PREDICT serves its baseline)"
        title = (f"Model '{self.name}': {latest['model_type']}, label {latest['label']}, "
                 f"{len(versions)} version(s), {state}")
        try:
            metrics = self.metrics()
        except Exception as e:  # noqa: BLE001 - a summary must show even when evaluation cannot run
            from .errors import SqlmlError
            if not isinstance(e, SqlmlError):
                raise
            metrics = None
        return title, versions, metrics

    def __repr__(self) -> str:
        title, versions, metrics = self._summary()
        shown = versions[["version", "deployed", "aliases", "disabled", "created_at", "status"]].to_string(index=False)
        text = f"{title}\n{shown}"
        if metrics is not None:
            text += "\n" + metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}")
        return text

    def _repr_html_(self) -> str:
        title, versions, metrics = self._summary()
        parts = [f"<h4>{html.escape(title)}</h4>",
                 versions[["version", "deployed", "aliases", "disabled", "training_rows", "created_at", "status"]]
                 .to_html(index=False)]
        if metrics is not None:
            parts.append(metrics.to_html(index=False, float_format=lambda v: f"{v:.4f}"))
        return "\n".join(parts)


class Card:
    """A model card's HTML page: shown inline by Jupyter, ``.save(path)`` writes it."""

    def __init__(self, page: str):
        self.html = page

    def _repr_html_(self) -> str:
        # An iframe keeps the card's own styles from reaching the notebook's page.
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:720px;border:0">'
                "</iframe>")

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.html)

    def __repr__(self) -> str:
        return f"<model card: {len(self.html):,} characters of HTML; .save(path) writes it>"

