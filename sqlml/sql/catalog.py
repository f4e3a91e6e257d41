"""The ML.* table functions sqlml serves, as the planner sees them: names and argument shapes.

The handlers live in :mod:`sqlml.functions`; a test checks both tables name the same functions.
"""

from __future__ import annotations

#: Every ML.* function that has a handler.
AVAILABLE = frozenset({
    "PREDICT", "EVALUATE", "CONFUSION_MATRIX", "ROC_CURVE", "THRESHOLD_METRICS", "TRAINING_INFO", "FEATURE_INFO",
    "WEIGHTS", "BASELINE", "FAIRNESS", "EXPLAIN_PREDICT", "GLOBAL_EXPLAIN", "FEATURE_IMPORTANCE", "TRIAL_INFO",
    "LEADERBOARD", "MODEL_CARD", "DESCRIBE_DATA", "TRANSFORM",
})

#: Functions whose result depends only on the model, not on input data.
MODEL_ONLY = frozenset({"TRAINING_INFO", "FEATURE_INFO", "WEIGHTS", "GLOBAL_EXPLAIN", "FEATURE_IMPORTANCE",
                        "TRIAL_INFO", "LEADERBOARD"})

#: Functions that read the tuning trials of a version.
READS_TRIALS = frozenset({"TRIAL_INFO", "LEADERBOARD"})
