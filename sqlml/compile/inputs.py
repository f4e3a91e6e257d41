"""The model's own preprocessing as SQL: the TRANSFORM clause replayed, then sqlml's automatic one.

As :class:`sqlml.model.preprocess.Preprocessor` computes it: a numeric column is CAST to DOUBLE, NULL
becomes the training mean, and (linear models, networks, k-means) it is standardized as
``(x - mean) / std``, the same two operations in the same order, so the value is the same double.
A category column is read as it is: a one-hot block times weights is a CASE over the categories
(an unseen category matches none and adds nothing), a tree's split on category codes a test of
membership in the categories those codes stand for. A boolean column's categories are 'true' and
'false'; they are compared as booleans.
"""

from __future__ import annotations

import typing as t

import sqlglot
from sqlglot import exp

from ..model.preprocess import Preprocessor
from ..sql import transform as transform_sql
from ..sql import dialect as _registers_sqlml_dialect  # noqa: F401  (the TRANSFORM is stored in it)
from . import expressions as x
from .program import Program, Relation


#: Category columns of at most this many categories are tested with a bit mask (a BIGINT holds 63 bits;
#: bit 0 stands for "unseen").
MASK_CATEGORIES = 62


class Inputs:
    """Feature expressions of one model over the columns of its :class:`~sqlml.compile.program.Relation`."""

    def __init__(self, preprocessor: Preprocessor, input_schema: list[dict]):
        self.preprocessor = preprocessor
        types = {c["name"]: str(c.get("type", "")) for c in input_schema}
        self.boolean = {c["name"] for c in preprocessor.columns if types.get(c["name"]) == "bool"}
        self._computed: dict[str, exp.Expr] = {}
        self._codes: dict[str, exp.Expr] = {}

    @property
    def columns(self) -> list[dict]:
        return self.preprocessor.columns

    def compute(self, program: Program, codes: bool = False) -> None:
        """Compute each numeric column as the model reads it once, in a step of ``program``, rather than in
        every expression that reads it; with ``codes``, each category column's code too (trees' splits test
        codes: a test of a string against a list of strings costs DuckDB ~4× a test of a number)."""
        numeric = [c for c in self.columns if c["kind"] == "numeric"]
        categorical = [c for c in self.columns if c["kind"] == "categorical"] if codes else []
        refs = program.step([self.numeric(c) for c in numeric] + [self._code(c) for c in categorical], "x")
        self._computed = {c["name"]: ref for c, ref in zip(numeric, refs)}
        self._codes = {c["name"]: ref for c, ref in zip(categorical, refs[len(numeric):])}

    def _code(self, c: dict) -> exp.Expr:
        """A category column's ordinal code as an integer: −1 for a category unseen at training."""
        values = {category: x.integer(k) for k, category in enumerate(c["categories"])}
        return x.category_lookup(x.column(c["name"]), values, c["name"] in self.boolean, x.integer(-1))

    def numeric(self, c: dict, standardize: bool | None = None) -> exp.Expr:
        """A numeric column as the model reads it: DOUBLE, NULL → training mean, standardized when the
        model standardizes (``standardize`` overrides)."""
        if c["name"] in self._computed and standardize is None:
            return self._computed[c["name"]].copy()
        value = exp.Coalesce(this=x.double(x.column(c["name"])), expressions=[x.number(c["mean"])])
        if not (self.preprocessor.standardize if standardize is None else standardize):
            return value
        return x.divide(x.minus(value, x.number(c["mean"])), x.number(c["std"]))

    def lookup(self, c: dict, weights: t.Sequence[float], default: float = 0.0) -> exp.Expr:
        """A category column's one-hot block times ``weights`` (one per category): the weight of the row's
        category, ``default`` for a category unseen at training."""
        values = {category: x.number(w) for category, w in zip(c["categories"], weights) if w != default}
        return x.category_lookup(x.column(c["name"]), values, c["name"] in self.boolean, x.number(default))

    def member(self, c: dict, codes: t.Iterable[int]) -> exp.Expr:
        """Whether the row's category has one of the ordinal ``codes`` (never NULL). On a computed code: one
        bit of a mask when the column has at most 62 categories (as fast as a comparison of numbers in
        DuckDB), else an IN list of codes."""
        codes = sorted(codes)
        code = self._codes.get(c["name"])
        if code is None:
            return x.category_test(x.column(c["name"]), [c["categories"][k] for k in codes], c["name"] in self.boolean)
        if not codes:
            return exp.false()
        if len(c["categories"]) > MASK_CATEGORIES:
            return exp.In(this=code.copy(), expressions=[x.integer(k) for k in codes])
        mask = sum(1 << (k + 1) for k in codes)  # bit 0: an unseen category (code −1), never a member
        position = exp.Paren(this=x.plus(code.copy(), x.integer(1)))
        bit = exp.BitwiseAnd(this=exp.Paren(this=exp.BitwiseRightShift(this=x.integer(mask), expression=position)),
                             expression=x.integer(1))
        return exp.EQ(this=bit, expression=x.integer(1))

    def blocks(self) -> t.Iterator[tuple[dict, slice]]:
        """Each input column with its slice of the feature matrix's columns."""
        position = 0
        for c in self.columns:
            width = self.preprocessor.width(c)
            yield c, slice(position, position + width)
            position += width

    def weighted_sums(self, weights: t.Any, intercepts: t.Sequence[float]) -> list[exp.Expr]:
        """``X @ weights + intercepts`` column by column (``weights``: matrix columns × outputs), each
        one-hot block as one lookup of its category's weight."""
        outputs = []
        for k, intercept in enumerate(intercepts):
            terms = [x.number(intercept)]
            for c, block in self.blocks():
                if c["kind"] == "numeric":
                    w = float(weights[block.start, k])
                    if w != 0.0:
                        terms.append(x.times(x.number(w), self.numeric(c)))
                else:
                    terms.append(self.lookup(c, [float(v) for v in weights[block, k]]))
            outputs.append(x.balanced_sum(terms))
        return outputs


def relation(source: exp.Expr, state: dict | None, columns: list[str] | None) -> Relation:
    """The rows of ``source`` as the model reads them: through its fitted TRANSFORM ``state`` (the same
    columns :func:`sqlml.sql.transform.wrap_sql` selects: TRANSFORM features, the label when the
    input can compute it, the input's other columns)."""
    if not state:
        return Relation(source, columns)
    if columns is not None:
        probe = transform_sql.wrap_sql(state, "SELECT 1", columns)
        wrapped = sqlglot.parse_one(probe, read="sqlml")
        items, rest = {}, []
        for projection in wrapped.expressions:
            if isinstance(projection, exp.Alias):
                items[projection.alias] = projection.this
            else:
                rest.append(projection.name)
        return Relation(source, list(items) + rest, items)
    features = [i for i in state["items"] if i["role"] == "feature"]
    items = {i["name"]: sqlglot.parse_one(i["sql"], read="sqlml") for i in features}
    read = {name for i in features for name in i["inputs"]}
    return Relation(source, None, items, [name for name in items if name in read])
