"""Splink-style SQL compiled to Python gives what DuckDB gives for the same rows, NULLs and non-ASCII
text included, and anything the compiler does not evaluate is refused rather than guessed."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdm.matching.rowscore import Unsupported, compile_condition, compile_scoring

TEXT = st.one_of(st.none(), st.text(alphabet="abc张伟偉李 -0189", max_size=8))
WORDS = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "3"])), max_size=3))
ROW = st.fixed_dictionaries(
    {
        "name": TEXT,
        "dob": st.one_of(
            st.none(), st.sampled_from(["1990-01-02", "1990-02-01", "1991-01-02", "1990-01-12"])
        ),
        "ok": st.one_of(st.none(), st.booleans()),
        "tf": st.one_of(st.none(), st.floats(min_value=1e-6, max_value=1.0)),
        "tags": WORDS,
    }
)
SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("dob", pa.string()),
        ("ok", pa.bool_()),
        ("tf", pa.float64()),
        ("tags", pa.list_(pa.string())),
    ]
)

#: Every construct Splink's comparison and prediction SQL uses, over two joined rows and two steps.
STATEMENT = """
SELECT rid_l, g, w, p, jw, lev, dl, sub, n, g_in, g_in_null FROM (WITH
joined AS (
    SELECT l.name AS name_l, r.name AS name_r, l.dob AS dob_l, r.dob AS dob_r, l.ok AS ok_l, r.ok AS ok_r,
    l.tf AS tf_l, r.tf AS tf_r, l.tags AS tags_l, r.tags AS tags_r, 7 AS rid_l
    FROM t_left AS l JOIN t_right AS r ON 1=1
),
levels AS (
    SELECT rid_l, tf_l, tf_r, dob_l, name_l, name_r, tags_l, tags_r, CASE
        WHEN name_l IS NULL OR name_r IS NULL THEN -1
        WHEN "name_l" = "name_r" THEN 4
        WHEN jaro_winkler_similarity(name_l, name_r) >= 0.8 AND NOT (ok_l = ok_r) THEN 3
        WHEN (damerau_levenshtein(name_l, name_r) <= 1) OR ok_l AND ok_r THEN 2
        WHEN levenshtein(dob_l, dob_r) <= 1 OR (substr(dob_l, 1, 4) = substr(dob_r, 1, 4)
            AND substr(dob_l, 6, 2) = substr(dob_r, 9, 2)) THEN 1
        WHEN array_length(list_intersect(tags_l, tags_r)) >= 1 THEN 5
        ELSE 0 END AS g
    FROM joined
)
SELECT rid_l, g,
    CASE WHEN g = 4 AND coalesce(tf_l, tf_r) IS NOT NULL THEN cast(1.5 as float8) * (cast(-3.25 as float8)
        - log2(greatest(coalesce(tf_l, tf_r), coalesce(tf_r, tf_l), cast(0.0 as float8))))
        WHEN g = -1 THEN cast(0 as float8) END AS w,
    CASE WHEN (g - 1.5) >= 0 THEN 1.0 / (1.0 + POWER(cast(2 as float8), -(g - 1.5)))
        ELSE POWER(cast(2 as float8), g - 1.5) / (1.0 + POWER(cast(2 as float8), (g - 1.5))) END AS p,
    jaro_winkler_similarity(name_l, name_r) AS jw, levenshtein(name_l, name_r) AS lev,
    damerau_levenshtein(name_l, name_r) AS dl, substr(dob_l, 6, 2) AS sub,
    array_length(list_intersect(tags_l, tags_r)) AS n,
    g IN (1, 4) AND NOT (g IN (-1)) AS g_in, CASE WHEN name_l IS NULL THEN NULL ELSE g END IN (2, NULL) AS g_in_null
FROM levels)
"""


def duckdb_rows(sql: str, left: dict[str, Any], right: dict[str, Any]) -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.register("t_left", pa.Table.from_pylist([left], schema=SCHEMA))
    con.register("t_right", pa.Table.from_pylist([right], schema=SCHEMA))
    result = con.execute(sql)
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


SCORER = compile_scoring(STATEMENT, "t_left", "t_right")


@settings(max_examples=300, deadline=None)
@given(ROW, ROW)
def test_compiled_statement_equals_duckdb(left: dict[str, Any], right: dict[str, Any]) -> None:
    (expected,) = duckdb_rows(STATEMENT, left, right)
    got = SCORER(left, right)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("北京市朝阳区建国路88号", "北京市朝阳区建国路89号"),
        ("朝阳", "阳朝"),
        ("ca", "abc"),
        ("", ""),
        ("zhangwei", "zhang wei"),
    ],
)
def test_string_distances_count_utf8_bytes_as_duckdb_does(a: str, b: str) -> None:
    left: dict[str, Any] = {"name": a, "dob": None, "ok": None, "tf": None, "tags": None}
    right = {**left, "name": b}
    (expected,) = duckdb_rows(STATEMENT, left, right)
    got = SCORER(left, right)
    assert (got["jw"], got["lev"], got["dl"]) == (expected["jw"], expected["lev"], expected["dl"])


@pytest.mark.parametrize(
    ("condition", "row", "expected"),
    [
        ("gamma_name IN (0, 1) AND NOT (gamma_id IN (4) OR gamma_card IN (1))", {"gamma_name": 1}, True),
        ("gamma_name IN (0, 1) AND NOT (gamma_id IN (4) OR gamma_card IN (1))", {"gamma_id": 4}, False),
        ("gamma_name IN (0, 1)", {"gamma_name": None}, None),
        ("gamma_name IN (0, NULL)", {"gamma_name": 3}, None),
        ("gamma_name IN (0, NULL)", {"gamma_name": 0}, True),
    ],
)
def test_conditions_follow_sql(condition: str, row: dict[str, Any], expected: bool | None) -> None:
    values = {"gamma_name": 0, "gamma_id": 0, "gamma_card": 0, **row}
    con = duckdb.connect()
    columns = ", ".join(f"?::INTEGER AS {k}" for k in values)
    (in_duckdb,) = con.execute(
        f"SELECT {condition} FROM (SELECT {columns})", list(values.values())
    ).fetchone() or ("no row",)
    assert compile_condition(condition)(values) is expected
    assert in_duckdb is expected


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("SELECT upper(l.name) AS x FROM t_left AS l JOIN t_right AS r ON 1=1", "Upper"),
        ("SELECT l.name AS x FROM t_left AS l JOIN t_right AS r ON l.name = r.name", "join condition"),
        ("SELECT l.name AS x FROM t_left AS l JOIN t_right AS r ON 1=1 WHERE l.ok", "WHERE"),
        ("SELECT l.name AS x FROM t_left AS l LEFT JOIN t_right AS r ON 1=1", "plain cross join"),
        ("SELECT substr(l.name, 0, 2) AS x FROM t_left AS l JOIN t_right AS r ON 1=1", "positive"),
        ("SELECT cast(l.name AS int) AS x FROM t_left AS l JOIN t_right AS r ON 1=1", "cast"),
        ("SELECT l.name AS x FROM t_other AS l JOIN t_right AS r ON 1=1", "t_left against t_right"),
        ("SELECT x FROM (SELECT l.name AS x FROM t_left AS l JOIN t_right AS r ON 1=1) ORDER BY x", "ORDER"),
    ],
)
def test_what_it_cannot_evaluate_is_refused(statement: str, reason: str) -> None:
    with pytest.raises(Unsupported, match=reason):
        compile_scoring(statement, "t_left", "t_right")
