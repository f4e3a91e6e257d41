"""A/B serving's arm of a row in plain DuckDB SQL: the hash of :mod:`sqlml.model.serve`, written out.

A row goes to the challenger when 64-bit FNV-1a of its split key's canonical text (UTF-8 bytes),
mixed by MurmurHash3's fmix64, is below ``challenger_fraction × 2^64`` (docs/release.md). In SQL the
64-bit arithmetic is done in UHUGEINT and masked back to 64 bits after each multiplication (no product
of two 64-bit numbers reaches 2^128); a masked AND costs DuckDB ~50× less than ``% 2^64``. The text is
split into code points and each code point is folded as its 1 to 4 UTF-8 bytes, so the bytes hashed
are the ones Arrow hands :func:`sqlml.model.serve.key_hashes` (~0.8 s per million keys of ~19 characters).
"""

from __future__ import annotations

from sqlglot import exp

from ..model.serve import FNV_OFFSET, FNV_PRIME
from . import expressions as x

FMIX = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)
MASK = 2**64 - 1
WIDE = exp.DataType.build("UHUGEINT", dialect="duckdb")


def challenger_arm(key_text: exp.Expr, fraction: float) -> exp.Expr:
    """Whether a row whose split key's canonical text is ``key_text`` goes to the challenger (never NULL)."""
    cut = min(max(float(fraction), 0.0), 1.0) * 2.0 ** 64
    if cut >= 2.0 ** 64:
        return exp.true()
    return exp.LT(this=_mixed(_fnv1a(key_text)), expression=_wide(int(cut)))


def _wide(value: int) -> exp.Expr:
    return exp.cast(x.integer(value), WIDE)


def _fnv1a(text: exp.Expr) -> exp.Expr:
    code_points = exp.Anonymous(this="list_transform", expressions=[
        exp.Anonymous(this="string_split", expressions=[text, exp.Literal.string("")]),
        exp.Lambda(this=exp.cast(exp.Anonymous(this="unicode", expressions=[exp.column("c")]), WIDE),
                   expressions=[exp.to_identifier("c")])])
    fold = exp.Lambda(this=_utf8_folded(exp.column("h"), exp.column("p")),
                      expressions=[exp.to_identifier("h"), exp.to_identifier("p")])
    return exp.Anonymous(this="list_reduce", expressions=[code_points, fold, _wide(int(FNV_OFFSET))])


def _utf8_folded(h: exp.Expr, point: exp.Expr) -> exp.Expr:
    """``h`` with the UTF-8 bytes of the code point ``point`` folded in, one FNV-1a step per byte."""
    def continuation(shift: int) -> exp.Expr:
        return _or(128, exp.paren(exp.BitwiseAnd(this=_shifted(point, shift), expression=x.integer(63))))

    def bytes_of(lead: int, width: int) -> list[exp.Expr]:
        return [_or(lead, _shifted(point, 6 * (width - 1)))] + [continuation(6 * k) for k in range(width - 2, -1, -1)]

    forms = [[point], bytes_of(192, 2), bytes_of(224, 3), bytes_of(240, 4)]
    folded = []
    for form in forms:
        value = h
        for byte in form:
            value = _step(value, byte)
        folded.append(value)
    limits = (128, 2048, 65536)
    return x.case([(exp.LT(this=point.copy(), expression=x.integer(limit)), value)
                   for limit, value in zip(limits, folded)], folded[-1])


def _step(h: exp.Expr, byte: exp.Expr) -> exp.Expr:
    return _masked(exp.Mul(this=_xor(h.copy(), byte.copy()), expression=_wide(int(FNV_PRIME))))


def _mixed(h: exp.Expr) -> exp.Expr:
    """MurmurHash3's fmix64 (``h ^= h >> 33; h *= c1; h ^= h >> 33; h *= c2; h ^= h >> 33``). Each stage
    reads ``h`` twice, so each is a lambda over a one-element list: written inline, the FNV-1a
    expression would be copied 8 times, and DuckDB computes every copy of a filter pushed into a scan
    (9× slower)."""
    value = exp.column("h")
    stages = [_masked(exp.Mul(this=exp.paren(_xor_shifted(value)), expression=_wide(m))) for m in FMIX]
    mixed = exp.Array(expressions=[h])
    for stage in [*stages, _xor_shifted(value)]:
        mixed = exp.Anonymous(this="list_transform", expressions=[mixed, exp.Lambda(
            this=stage, expressions=[exp.to_identifier("h")])])
    return exp.Anonymous(this="list_extract", expressions=[mixed, x.integer(1)])


def _xor_shifted(h: exp.Expr) -> exp.Expr:
    return _xor(h.copy(), _shifted(h, 33))


def _xor(left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this="xor", expressions=[left, right])


def _shifted(node: exp.Expr, bits: int) -> exp.Expr:
    return exp.paren(exp.BitwiseRightShift(this=node.copy(), expression=x.integer(bits))) if bits else node.copy()


def _or(lead: int, node: exp.Expr) -> exp.Expr:
    """``lead | node``: DuckDB gives ``|`` and ``&`` one precedence, so every operand is parenthesized."""
    return exp.paren(exp.BitwiseOr(this=x.integer(lead), expression=node))


def _masked(node: exp.Expr) -> exp.Expr:
    return exp.paren(exp.BitwiseAnd(this=exp.paren(node), expression=_wide(MASK)))
