"""Splink's scoring SQL compiled to Python, for the few pairs of one real-time request.

DuckDB takes several milliseconds to run the model's statement (about 15k characters of CTEs) even
on one pair, while a request scores a handful. This module parses that very statement with sqlglot
once and compiles it into one Python function per pair, so the levels, weights and term-frequency
terms are Splink's own, not a second implementation of them. Functions keep DuckDB's semantics:
NULL propagates, a CASE branch is taken only when its condition is true, and the string distances
(``jaro_winkler_similarity``, ``levenshtein``, ``damerau_levenshtein``) compare UTF-8 bytes as DuckDB
does. A statement with anything else is refused at compile time (:class:`Unsupported`), and the
caller keeps scoring in DuckDB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import sqlglot
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein
from sqlglot import exp

Row = Mapping[str, Any]
PairScorer = Callable[[Row, Row], dict[str, Any]]


class Unsupported(ValueError):
    """The statement uses SQL this compiler does not evaluate (score it in DuckDB instead)."""


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _not(a: bool | None) -> bool | None:
    return None if a is None else not a


def _eq(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a == b


def _neq(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a != b


def _gt(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a > b


def _gte(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a >= b


def _lt(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a < b


def _lte(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a <= b


def _in(a: Any, *values: Any) -> bool | None:
    """SQL ``a IN (values)``: NULL when ``a`` is, or when it is not found and a value is NULL."""
    if a is None:
        return None
    if a in values:
        return True
    return None if None in values else False


def _add(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a + b


def _sub(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a - b


def _mul(a: Any, b: Any) -> Any:
    return None if a is None or b is None else a * b


def _div(a: Any, b: Any) -> Any:
    """DuckDB's ``/``: true division, NULL for a zero divisor."""
    return None if a is None or b is None or b == 0 else a / b


def _neg(a: Any) -> Any:
    return None if a is None else -a


def _float(a: Any) -> float | None:
    return None if a is None else float(a)


def _pow(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else math.pow(a, b)


def _log(base: Any, a: Any) -> float | None:
    """DuckDB's ``log``: an error, not NULL, for a value that is not positive."""
    if a is None or base is None:
        return None
    if a <= 0:
        raise ArithmeticError("cannot take logarithm of zero or a negative number")
    return math.log2(a) if base == 2 else math.log(a, base)


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _greatest(*values: Any) -> Any:
    """DuckDB's ``greatest``: NULL arguments are skipped."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _jaro_winkler(a: str | None, b: str | None) -> float | None:
    """DuckDB's: over UTF-8 bytes, and 0 when either string is empty (two empty strings too)."""
    if a is None or b is None:
        return None
    return JaroWinkler.similarity(a.encode(), b.encode()) if a and b else 0.0


def _levenshtein(a: str | None, b: str | None) -> int | None:
    return None if a is None or b is None else Levenshtein.distance(a.encode(), b.encode())


def _damerau_levenshtein(a: str | None, b: str | None) -> int | None:
    return None if a is None or b is None else DamerauLevenshtein.distance(a.encode(), b.encode())


def _substr(a: str | None, start: int, length: int) -> str | None:
    return None if a is None else a[start - 1 : start - 1 + length]


def _array_size(a: list[Any] | None) -> int | None:
    return None if a is None else len(a)


def _list_intersect(a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
    """Distinct non-null elements of ``a`` also in ``b``, as DuckDB: NULL when ``a`` is, empty when only
    ``b`` is (order is not kept: only sizes are read)."""
    if a is None:
        return None
    if b is None:
        return []
    return list({v for v in a if v is not None} & {v for v in b if v is not None})


_RUNTIME: dict[str, Any] = {
    f.__name__: f
    for f in (
        _and,
        _or,
        _not,
        _eq,
        _neq,
        _gt,
        _gte,
        _lt,
        _lte,
        _in,
        _add,
        _sub,
        _mul,
        _div,
        _neg,
        _float,
        _pow,
        _log,
        _coalesce,
        _greatest,
        _jaro_winkler,
        _levenshtein,
        _damerau_levenshtein,
        _substr,
        _array_size,
        _list_intersect,
    )
}
_BINARY: dict[type[exp.Expression], str] = {
    exp.And: "_and",
    exp.Or: "_or",
    exp.EQ: "_eq",
    exp.NEQ: "_neq",
    exp.GT: "_gt",
    exp.GTE: "_gte",
    exp.LT: "_lt",
    exp.LTE: "_lte",
    exp.Add: "_add",
    exp.Sub: "_sub",
    exp.Mul: "_mul",
    exp.Div: "_div",
    exp.Pow: "_pow",
    exp.Levenshtein: "_levenshtein",
    exp.JarowinklerSimilarity: "_jaro_winkler",
}
_ANONYMOUS = {"damerau_levenshtein": ("_damerau_levenshtein", 2), "list_intersect": ("_list_intersect", 2)}
_FLOAT_TYPES = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}


def _positive_int(node: exp.Expression | None) -> int:
    if not isinstance(node, exp.Literal) or node.is_string or not node.this.isdigit() or int(node.this) < 1:
        raise Unsupported(f"substr needs positive integer literals, not {node.sql() if node else None!r}")
    return int(node.this)


def _literal(node: exp.Literal) -> str:
    if node.is_string:
        return repr(node.this)
    text = node.this
    return repr(int(text)) if text.lstrip("-").isdigit() else repr(float(text))


def _column(node: exp.Column, tables: frozenset[str]) -> str:
    table = node.table
    if table:
        if table not in tables:
            raise Unsupported(f"column of unknown table {table!r}")
        return f"{table}[{node.name!r}]"
    if "row" not in tables:
        raise Unsupported(f"unqualified column {node.name!r} in the join")
    return f"row[{node.name!r}]"


def _case(node: exp.Case, tables: frozenset[str]) -> str:
    if node.this is not None:
        raise Unsupported("CASE with an operand")
    default = node.args.get("default")
    code = "None" if default is None else _code(default, tables)
    for branch in reversed(node.args.get("ifs") or []):
        code = f"({_code(branch.args['true'], tables)} if {_code(branch.this, tables)} is True else {code})"
    return code


def _code(node: exp.Expression, tables: frozenset[str]) -> str:
    """Python source of one SQL expression over ``row`` (or ``l`` and ``r`` in the join)."""
    if isinstance(node, exp.Paren):
        return _code(node.this, tables)
    if isinstance(node, exp.Column):
        return _column(node, tables)
    if isinstance(node, exp.Literal):
        return _literal(node)
    if isinstance(node, exp.Boolean):
        return repr(bool(node.this))
    if isinstance(node, exp.Null):
        return "None"
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return f"({_code(node.this, tables)} is None)"
    if isinstance(node, exp.Not):
        return f"_not({_code(node.this, tables)})"
    if isinstance(node, exp.Neg):
        return f"_neg({_code(node.this, tables)})"
    if type(node) in _BINARY:
        return f"{_BINARY[type(node)]}({_code(node.this, tables)}, {_code(node.expression, tables)})"
    if isinstance(node, exp.In) and node.expressions and not node.args.get("query"):
        return f"_in({', '.join(_code(a, tables) for a in [node.this, *node.expressions])})"
    if isinstance(node, exp.Cast):
        if node.to.this not in _FLOAT_TYPES:
            raise Unsupported(f"cast to {node.to.sql()}")
        return f"_float({_code(node.this, tables)})"
    if isinstance(node, exp.Case):
        return _case(node, tables)
    if isinstance(node, exp.Log):
        return f"_log({_code(node.this, tables)}, {_code(node.expression, tables)})"
    if isinstance(node, (exp.Coalesce, exp.Greatest)):
        args = ", ".join(_code(a, tables) for a in [node.this, *node.expressions])
        return f"{'_coalesce' if isinstance(node, exp.Coalesce) else '_greatest'}({args})"
    if isinstance(node, exp.ArraySize) and node.args.get("expression") is None:
        return f"_array_size({_code(node.this, tables)})"
    if isinstance(node, exp.Substring):
        start, length = _positive_int(node.args.get("start")), _positive_int(node.args.get("length"))
        return f"_substr({_code(node.this, tables)}, {start}, {length})"
    if isinstance(node, exp.Anonymous) and node.name.lower() in _ANONYMOUS:
        name, arity = _ANONYMOUS[node.name.lower()]
        if len(node.expressions) != arity:
            raise Unsupported(f"{node.name} with {len(node.expressions)} arguments")
        return f"{name}({', '.join(_code(a, tables) for a in node.expressions)})"
    raise Unsupported(f"{type(node).__name__}: {node.sql(dialect='duckdb')[:80]}")


def _stage(select: exp.Select, tables: frozenset[str]) -> list[str]:
    """Assignments computing one SELECT's new or renamed columns into ``out`` (pass-throughs are free)."""
    lines = []
    for projection in select.expressions:
        name = projection.alias_or_name
        value = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(value, exp.Column) and not value.table and value.name == name and "row" in tables:
            continue
        lines.append(f"    out[{name!r}] = {_code(value, tables)}")
    return lines


def _join_of(select: exp.Select) -> tuple[str, str]:
    """The aliases of a cross join of two tables (``FROM a AS l JOIN b AS r ON 1=1``)."""
    source = select.args.get("from_")
    joins = select.args.get("joins") or []
    if source is None or len(joins) != 1 or not isinstance(source.this, exp.Table):
        raise Unsupported("the first step is not a join of two tables")
    join = joins[0]
    condition = join.args.get("on")
    if condition is not None and condition.sql() not in ("1 = 1", "TRUE"):
        raise Unsupported(f"join condition {condition.sql()!r}")
    if join.args.get("kind") or join.args.get("side"):
        raise Unsupported("the join is not a plain cross join")
    return source.this.alias_or_name, join.this.alias_or_name


def _steps(select: exp.Select) -> list[exp.Select]:
    """The statement's SELECTs in evaluation order: each CTE, then the body, then any wrapping SELECTs."""
    wrappers = []
    while True:
        source = select.args.get("from_")
        if source is None or not isinstance(source.this, exp.Subquery):
            break
        wrappers.append(select)
        select = source.this.this
        if not isinstance(select, exp.Select):
            raise Unsupported("a subquery that is not a SELECT")
    with_ = select.args.get("with_")
    ctes = [cte.this for cte in (with_.expressions if with_ else [])]
    steps = [*ctes, select, *reversed(wrappers)]
    for step in steps:
        if not isinstance(step, exp.Select):
            raise Unsupported("a step that is not a SELECT")
        for key in ("where", "group", "having", "order", "limit", "distinct", "qualify"):
            if step.args.get(key):
                raise Unsupported(f"{key.upper()} in a step")
    return steps


def _parse(sql: str, what: str) -> exp.Expression:
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise Unsupported(f"unparsable {what}: {exc}") from None
    if not isinstance(tree, exp.Expression):
        raise Unsupported(f"not a {what}")
    return tree


def _define(lines: list[str], name: str) -> Any:
    """The function ``name`` defined by the generated source ``lines``, over the runtime helpers."""
    namespace = dict(_RUNTIME)
    exec(compile("\n".join(lines), f"<sql {name}>", "exec"), namespace)
    return namespace[name]


def compile_condition(sql: str) -> Callable[[Row], Any]:
    """``test(row)``: one SQL expression (e.g. a WHERE condition) over a row's columns."""
    test: Callable[[Row], Any] = _define(
        ["def test(row):", f"    return {_code(_parse(sql, 'condition'), frozenset({'row'}))}"], "test"
    )
    return test


def compile_scoring(sql: str, left: str, right: str) -> PairScorer:
    """``score(l, r)``: the statement's output row for one pair, ``l`` a row of table ``left`` and ``r``
    of ``right`` (dicts of column values, lists as lists, NULL as None)."""
    tree = _parse(sql, "statement")
    if not isinstance(tree, exp.Select):
        raise Unsupported("not a SELECT")
    steps = _steps(tree)
    first = steps[0]
    names = _join_of(first)
    tables = {
        names[0]: left if first.args["from_"].this.name == left else None,
        names[1]: right if first.args["joins"][0].this.name == right else None,
    }
    if set(tables.values()) != {left, right}:
        raise Unsupported(f"the join is not {left} against {right}")
    variables = {alias: "l" if table == left else "r" for alias, table in tables.items()}
    renamed = first.copy()
    for column in renamed.find_all(exp.Column):
        if column.table in variables:
            column.set("table", exp.to_identifier(variables[column.table]))
    lines = ["def score(l, r):", "    out = {}", *_stage(renamed, frozenset({"l", "r"}))]
    for step in steps[1:]:
        lines += ["    row, out = out, dict(out)", *_stage(step, frozenset({"row"}))]
    outputs = [p.alias_or_name for p in steps[-1].expressions]
    lines.append(f"    return {{k: out[k] for k in {outputs!r}}}")
    scorer: PairScorer = _define(lines, "score")
    return scorer
