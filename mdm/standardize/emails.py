"""E-mail addresses: trimmed, lower-cased, deduplicated; alias-folded keys for matching.

Keys fold provider aliases of one mailbox: ``foxmail.com`` is ``qq.com``, ``googlemail.com`` is
``gmail.com`` (whose local part ignores dots), and a ``+tag`` in the local part is dropped.
"""

from __future__ import annotations

import polars as pl

from mdm.standardize.vec import flag_list

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


def standardize_emails(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``emails``, ``email_keys`` and ``_flag_emails`` (``email:invalid``; invalid ones are dropped)."""
    cleaned = (
        pl.col("email").list.eval(clean_email(pl.element())).fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )
    step = df.with_columns(_em=cleaned.list.eval(pl.element().filter(pl.element().str.len_chars() > 0)))
    valid = pl.element().str.contains(VALID)
    return step.with_columns(
        emails=pl.col("_em").list.eval(pl.element().filter(valid)).list.unique(maintain_order=True),
        email_keys=pl.col("_em")
        .list.eval(email_key(pl.element().filter(valid)))
        .list.unique(maintain_order=True),
        _flag_emails=flag_list(
            pl.when(pl.col("_em").list.eval(~valid).list.any()).then(pl.lit("email:invalid"))
        ),
    ).drop("_em")
