"""Model families CREATE MODEL does not fit from a feature matrix (:mod:`sqlml.train.fit`), each with its
own trainer, and the ML.* functions each such family answers.

A trainer takes ``(name, query_sql, options, engine, progress, deployed)`` — ``deployed()`` loads the
version deployed now, or gives None — and returns the registry row of the new version and the deploy
gate's verdict on it; the executor stores both as for any model.
"""

from __future__ import annotations

import typing as t

from ..errors import SqlmlError
from ..model.kinds import ARIMA, MODEL_KINDS


def _arima(*args: t.Any) -> tuple:
    from . import arima
    return arima.train(*args)


#: Family → its trainer.
TRAINERS: dict[str, t.Callable[..., tuple]] = {ARIMA: _arima}

#: Family → the ML.* functions its models answer (the others answer every function but these families').
FUNCTIONS: dict[str, frozenset[str]] = {
    ARIMA: frozenset({"FORECAST", "EXPLAIN_FORECAST", "DETECT_ANOMALIES", "EVALUATE", "ARIMA_EVALUATE",
                      "ARIMA_COEFFICIENTS", "HOLIDAY_INFO", "TRAINING_INFO", "FEATURE_INFO", "MODEL_CARD"}),
}


def trainer(options: dict) -> t.Callable[..., tuple] | None:
    """The trainer of the model type ``options`` names, if its family has one of its own."""
    kind = MODEL_KINDS.get(str(options.get("model_type", "")).lower())
    return TRAINERS.get(kind.family) if kind is not None else None


def check_function(family: str, model_type: str, function: str) -> None:
    """Refuse an ML.* function a model of ``family`` cannot answer, naming those it can."""
    answered = FUNCTIONS.get(family)
    if answered is not None and function not in answered:
        raise SqlmlError(f"ML.{function} does not apply to {model_type} models; they answer "
                         f"{', '.join('ML.' + f for f in sorted(answered))}.")
