"""E-mail addresses: trimmed, lower-cased, deduplicated; alias-folded keys for matching.

Keys fold provider aliases of one mailbox: ``foxmail.com`` is ``qq.com``, ``googlemail.com`` is
``gmail.com`` (whose local part ignores dots), and a ``+tag`` in the local part is dropped.
"""

from __future__ import annotations

from functools import lru_cache

import polars as pl

from mdm.standardize.vec import EMPTY_STRINGS, all_null, flag_list, run

VALID = r"^[a-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+$"
#: Domain -> canonical domain of the same mailbox.
DOMAIN_ALIASES: dict[str, str] = {"foxmail.com": "qq.com", "googlemail.com": "gmail.com"}
#: Domains whose local part ignores dots.
DOTLESS_DOMAINS: tuple[str, ...] = ("gmail.com",)


def clean_email(e: pl.Expr) -> pl.Expr:
    """Trim, NFKC, strip ``mailto:`` and angle brackets, lower-case."""
    return (
        e.str.normalize("NFKC")
        .str.strip_chars()
        .str.strip_chars("<>;,")
        .str.to_lowercase()
        .str.replace(r"^mailto:", "")
    )


def email_key(e: pl.Expr) -> pl.Expr:
    """Alias-folded key of a clean address (``a.b+x@googlemail.com`` -> ``ab@gmail.com``)."""
    local = e.str.extract(r"^(.*)@", 1).str.replace(r"\+.*$", "")
    raw_domain = e.str.extract(r"@([^@]+)$", 1)
    domain = raw_domain.replace(DOMAIN_ALIASES)
    local = pl.when(domain.is_in(DOTLESS_DOMAINS)).then(local.str.replace_all(r"\.", "")).otherwise(local)
    return pl.format("{}@{}", local, domain)


@lru_cache(maxsize=1)
def _steps() -> tuple[list[pl.Expr], ...]:
    """The steps of :func:`standardize_emails`, built once (each step sees the previous ones).

    ``_em`` holds the cleaned non-blank addresses (never null, no null elements), ``_ok`` the valid ones.
    """
    cleaned = pl.col("email").list.eval(clean_email(pl.element())).fill_null(EMPTY_STRINGS)
    valid = pl.element().str.contains(VALID)
    return (
        [cleaned.list.eval(pl.element().filter(pl.element().str.len_chars() > 0)).alias("_em")],
        [pl.col("_em").list.eval(pl.element().filter(valid)).alias("_ok")],
        [
            pl.col("_ok").list.unique(maintain_order=True).alias("emails"),
            pl.col("_ok")
            .list.eval(email_key(pl.element()))
            .list.unique(maintain_order=True)
            .alias("email_keys"),
            flag_list(
                pl.when(pl.col("_ok").list.len() < pl.col("_em").list.len()).then(pl.lit("email:invalid"))
            ).alias("_flag_emails"),
        ],
    )


#: What a frame without any e-mail gets (the general path gives exactly these).
_NO_EMAILS = (
    EMPTY_STRINGS.alias("emails"),
    EMPTY_STRINGS.alias("email_keys"),
    EMPTY_STRINGS.alias("_flag_emails"),
)


def standardize_emails(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``emails``, ``email_keys`` and ``_flag_emails`` (``email:invalid``; invalid ones are dropped)."""
    if all_null(df, "email"):
        return df.with_columns(_NO_EMAILS)
    plan = df.lazy()
    for step in _steps():
        plan = plan.with_columns(step)
    return run(plan.drop("_em", "_ok"))
