"""Birth dates: every spelling the sources use, unknown markers, impossible dates."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from mdm.standardize.dates import standardize_birth_date

TODAY = dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    ("raw", "expected", "flag"),
    [
        ("1990-01-01", dt.date(1990, 1, 1), None),
        ("19650216", dt.date(1965, 2, 16), None),
        ("1955/9/15", dt.date(1955, 9, 15), None),
        ("1987/12/14", dt.date(1987, 12, 14), None),
        ("1972.12.21", dt.date(1972, 12, 21), None),
        ("1949年3月20日", dt.date(1949, 3, 20), None),
        ("2/13/1959", dt.date(1959, 2, 13), None),
        ("10/2/1983", dt.date(1983, 10, 2), None),
        ("23456", dt.date(1964, 3, 20), None),
        ("32874.0", dt.date(1990, 1, 1), None),
        ("1990-01-01 00:00:00", dt.date(1990, 1, 1), None),
        ("1990-01-01T08:30", dt.date(1990, 1, 1), None),
        ("１９９０－０１－０１", dt.date(1990, 1, 1), None),
        ("00000000", None, None),
        ("0/0/00", None, None),
        ("", None, None),
        (None, None, None),
        ("--1226", None, "birth_date:no_year"),
        ("--12-26", None, "birth_date:no_year"),
        ("1990-02-30", None, "birth_date:impossible_date"),
        ("19901301", None, "birth_date:impossible_date"),
        ("1850-01-01", None, "birth_date:impossible_date"),
        ("2030-01-01", None, "birth_date:impossible_date"),
        ("yesterday", None, "birth_date:unparseable"),
    ],
)
def test_birth_date(raw: str | None, expected: dt.date | None, flag: str | None) -> None:
    df = pl.DataFrame({"birth_date": [raw]}, schema={"birth_date": pl.String})
    row = standardize_birth_date(df, TODAY).row(0, named=True)
    assert row["birth_date_std"] == expected
    assert row["_flag_dates"] == ([flag] if flag else [])
