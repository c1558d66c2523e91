"""Record-level corruptions: each source record is a person seen through noise (polars expressions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mdm.generate.tables import Tables

HALF = "0123456789X"
FULL = "０１２３４５６７８９Ｘ"


def pick(k: pl.Expr, options: list[pl.Expr]) -> pl.Expr:
    """Choose options[k] per row."""
    expr: pl.Expr = options[-1]
    for i in range(len(options) - 2, -1, -1):
        expr = pl.when(k == i).then(options[i]).otherwise(expr)
    return expr


def phone_format(m: pl.Expr, k: pl.Expr) -> pl.Expr:
    """An 11-digit mobile written plain, `133-3233-5638`, `185 9697 2539`, `+86 13…` or `+86-135-1923-0473`."""
    a, b, c = m.str.slice(0, 3), m.str.slice(3, 4), m.str.slice(7, 4)
    return pick(
        k,
        [
            m,
            pl.concat_str(a, b, c, separator="-"),
            pl.concat_str(a, b, c, separator=" "),
            pl.concat_str(pl.lit("+86 "), m),
            pl.concat_str(pl.lit("+86"), a, b, c, separator="-"),
        ],
    )


def id_typo(col: pl.Expr, pos: pl.Expr, delta: pl.Expr) -> pl.Expr:
    """Replace the digit at `pos` by (digit + delta) mod 10: a one-digit keying error."""
    digit = ((col.str.slice(pos, 1).cast(pl.Int64, strict=False).fill_null(0) + delta) % 10).cast(pl.String)
    return pl.concat_str(col.str.slice(0, pos), digit, col.str.slice(pos + 1))


def id_transpose(col: pl.Expr, pos: pl.Expr) -> pl.Expr:
    """Swap the characters at `pos` and `pos + 1`."""
    return pl.concat_str(
        col.str.slice(0, pos), col.str.slice(pos + 1, 1), col.str.slice(pos, 1), col.str.slice(pos + 2)
    )


def to_fullwidth(col: pl.Expr) -> pl.Expr:
    """Digits and X in full-width forms, as typed with a Chinese input method."""
    return col.str.replace_many(list(HALF), list(FULL))


def detail_text(short: pl.Expr) -> pl.Expr:
    """Street detail long (`12号院3号楼2单元1503室`) or short (`12号院3-2-1503`)."""
    yard = pl.when(pl.col("yard") > 0).then(pl.format("{}号院", pl.col("yard"))).otherwise(pl.lit(""))
    head = pl.concat_str(pl.col("street"), pl.format("{}号", pl.col("house_no")), yard)
    long = pl.format("{}号楼{}单元{}室", pl.col("bldg"), pl.col("unit"), pl.col("room"))
    brief = pl.format("{}-{}-{}", pl.col("bldg"), pl.col("unit"), pl.col("room"))
    return pl.concat_str(head, pl.when(short).then(brief).otherwise(long))


def address_text(form: pl.Expr) -> pl.Expr:
    """Full address in four forms: full, without province, district only, abbreviated (`北京西城金融大街…`)."""
    municipality = pl.col("province") == pl.col("city")
    full_head = pl.when(municipality).then(pl.col("city")).otherwise(pl.col("province") + pl.col("city"))
    abbrev = pl.concat_str(
        pl.col("city").str.strip_suffix("市"),
        pl.col("district").str.replace(r"(新区|区)$", ""),
    )
    head = pick(
        form,
        [full_head + pl.col("district"), pl.col("city") + pl.col("district"), pl.col("district"), abbrev],
    )
    return pl.concat_str(head, pl.col("detail"))


def render(records: pl.DataFrame, rng: np.random.Generator, t: Tables, noise: dict[str, Any]) -> pl.DataFrame:
    """Add the noisy `r_*` columns every writer draws from: name, ID, mobile, birth, address, contacts."""
    n = records.height

    def u() -> pl.Series:
        return pl.Series(rng.random(n))

    def ints(lo: int, hi: int) -> pl.Series:
        return pl.Series(rng.integers(lo, hi, n))

    phone_p = np.array(noise["phone_formats"], dtype=float)
    addr_p = np.array(noise["address_forms"], dtype=float)
    d = t.districts
    resident = pl.col("id_type") == "01"
    old_enough = pl.col("birth").dt.year() < 1985
    id_kind = pl.Series(
        rng.choice(
            5,
            n,
            p=_probs(
                [noise["id_typo"], noise["id_transpose"], noise["id_legacy15"], noise["id_fullwidth"]],
            ),
        )
    )
    frame = records.with_columns(
        pl.col("district_idx").replace_strict(dict(enumerate(d["province"].to_list()))).alias("province"),
        pl.col("district_idx").replace_strict(dict(enumerate(d["city"].to_list()))).alias("city"),
        pl.col("district_idx").replace_strict(dict(enumerate(d["district"].to_list()))).alias("district"),
        pl.col("district_idx").replace_strict(dict(enumerate(d["landline"].to_list()))).alias("landline"),
        d["streets"]
        .gather(records["district_idx"])
        .list.get(records["street_pick"], null_on_oob=True)
        .alias("street"),
        pl.Series("u_id_kind", id_kind),
        pl.Series("u_pos", rng.integers(6, 17, n)),
        pl.Series("u_delta", rng.integers(1, 10, n)),
        pl.Series("u_phone_fmt", rng.choice(len(phone_p), n, p=phone_p / phone_p.sum())),
        pl.Series("u_addr_form", rng.choice(len(addr_p), n, p=addr_p / addr_p.sum())),
        pl.Series("u_short", rng.random(n) < noise["address_short_detail"]),
        (u() < noise["traditional_name"]).alias("u_trad"),
        (u() < noise["pinyin_name"]).alias("u_pinyin"),
        (u() < noise["pinyin_given_first"]).alias("u_given_first"),
        (u() < noise["spaced_name"]).alias("u_spaced"),
        (u() < noise["id_lower_x"]).alias("u_lower_x"),
        (u() < noise["id_missing"]).alias("u_id_missing"),
        (u() < noise["old_mobile"]).alias("u_old_mobile"),
        (u() < noise["birth_missing"]).alias("u_birth_missing"),
        (u() < noise["sex_missing"]).alias("u_sex_missing"),
        (u() < noise["email_missing"]).alias("u_email_missing"),
        (u() < noise["home_phone_missing"]).alias("u_home_missing"),
        (u() < noise["address_missing"]).alias("u_addr_missing"),
        (u() < noise["id_in_note"]).alias("u_id_note"),
        ints(0, 1_000_000).alias("u_int"),
    )
    trad = pl.col("name").str.replace_many(list(t.s2t), list(t.s2t.values()))
    idno = pl.col("id_no")
    noisy_id = pick(
        pl.col("u_id_kind"),
        [
            id_typo(idno, pl.col("u_pos"), pl.col("u_delta")),
            id_transpose(idno, pl.col("u_pos")),
            pl.when(old_enough).then(pl.col("id15")).otherwise(idno),
            to_fullwidth(idno),
            idno,
        ],
    )
    noisy_id = pl.when(resident).then(noisy_id).otherwise(idno)
    noisy_id = (
        pl.when(pl.col("u_lower_x")).then(noisy_id.str.replace("X", "x", literal=True)).otherwise(noisy_id)
    )
    mobile = pl.when(pl.col("u_old_mobile") & pl.col("mobile_prev").is_not_null())
    return (
        frame.with_columns(
            pl.when(pl.col("u_trad"))
            .then(trad)
            .when(pl.col("u_spaced") & (pl.col("surname").str.len_chars() == 1))
            .then(pl.concat_str(pl.col("surname"), pl.col("given"), separator=" "))
            .otherwise(pl.col("name"))
            .alias("r_name"),
            pl.when(pl.col("u_given_first"))
            .then(pl.concat_str(pl.col("py_given"), pl.col("py_surname"), separator=" "))
            .otherwise(pl.concat_str(pl.col("py_surname"), pl.col("py_given"), separator=" "))
            .alias("r_pinyin"),
            pl.when(pl.col("u_id_missing")).then(None).otherwise(noisy_id).alias("r_id"),
            (pl.col("u_id_kind") == 4).alias("r_id_clean"),
            mobile.then(pl.col("mobile_prev")).otherwise(pl.col("mobile")).alias("r_mobile"),
            pl.when(pl.col("u_birth_missing")).then(None).otherwise(pl.col("birth")).alias("r_birth"),
            pl.when(pl.col("u_email_missing") | ~pl.col("has_email"))
            .then(None)
            .otherwise(pl.col("email"))
            .alias("r_email"),
            pl.when(pl.col("u_home_missing") | ~pl.col("has_home"))
            .then(None)
            .otherwise(pl.format("{}-{}", pl.col("landline"), pl.col("home_local")))
            .alias("r_home"),
            (pl.col("open_days").cast(pl.Date)).alias("r_open"),
        )
        .with_columns(
            phone_format(pl.col("r_mobile"), pl.col("u_phone_fmt")).alias("r_mobile_fmt"),
            detail_text(pl.col("u_short")).alias("detail"),
        )
        .with_columns(
            pl.when(pl.col("u_addr_missing"))
            .then(None)
            .otherwise(address_text(pl.col("u_addr_form")))
            .alias("r_address"),
        )
    )


def _probs(rates: list[float]) -> list[float]:
    """Probabilities of k exclusive events plus 'none of them' last."""
    total = float(sum(rates))
    return [*rates, max(0.0, 1.0 - total)]
