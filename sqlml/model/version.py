"""What the registry knows of a model version, apart from its bytes."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass


@dataclass
class ModelVersion:
    """A registry row without the model bytes."""

    name: str
    version: int
    model_type: str
    label: str | None
    label_type: str | None
    options: dict
    input_schema: list
    metrics: dict
    eval_tables: dict
    feature_info: list
    training_info: list
    library_versions: dict
    training_rows: int
    eval_rows: int
    query: str
    created_at: t.Any
    fingerprint: str
    incarnation: str | None = None  # the model's life (from CREATE to DROP) it belongs to; None before 0.4
    damage: str | None = None  # why the registry refuses this row (edited outside sqlml), if it does
    legacy: bool = False  # signed by sqlml before 0.4: its signature covers only the columns that steer scoring
    key_problem: bool = False  # ``damage`` is that the registry was signed with another key
