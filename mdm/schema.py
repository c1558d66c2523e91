"""The canonical person record: the column contract between readers, standardizers, store and matching.

Data flows one way: a reader yields *native* columns, the source configuration maps them onto the
RAW fields below, standardization adds the STANDARD fields, and matching reads only STANDARD fields.
"""

from __future__ import annotations

import polars as pl

#: Raw canonical fields after column mapping. Scalars are strings; list fields are lists of strings.
RAW_SCALAR_FIELDS: tuple[str, ...] = (
    "name",  # name as given, any script
    "name_alt",  # a second spelling the source gives (e.g. English / pinyin name)
    "sex",
    "birth_date",
    "id_type",
    "id_number",
    "address",
    "province",  # structured address parts when the source has them
    "city",
    "district",
    "company",
    "job_title",
    "advisor",  # relationship manager named by the source
    "note",
    "source_updated_at",
)
RAW_LIST_FIELDS: tuple[str, ...] = ("mobile", "phone", "email", "bank_card")
RAW_FIELDS: tuple[str, ...] = RAW_SCALAR_FIELDS + RAW_LIST_FIELDS

#: Provenance columns every raw frame carries.
PROVENANCE_FIELDS: tuple[str, ...] = ("source", "source_key", "file", "locator")

#: Reader-level data-quality flags travel in this column as "field:flag" strings.
FLAGS = "dq_flags"

RAW_SCHEMA: dict[str, pl.DataType] = {
    **{f: pl.String() for f in PROVENANCE_FIELDS},
    **{f: pl.String() for f in RAW_SCALAR_FIELDS},
    **{f: pl.List(pl.String()) for f in RAW_LIST_FIELDS},
    FLAGS: pl.List(pl.String()),
}

#: Columns standardization adds (see mdm.standardize). Matching reads only these.
STANDARD_SCHEMA: dict[str, pl.DataType] = {
    "name_simplified": pl.String(),  # hanzi name, traditional folded to simplified; null for latin names
    "name_pinyin": pl.String(),  # lower-case pinyin syllables, surname first, space separated
    "name_pinyin_sorted": pl.String(),  # pinyin tokens sorted and joined: order-insensitive key
    "surname": pl.String(),  # hanzi surname when known, else pinyin surname
    "surname_pinyin": pl.String(),
    "given_pinyin": pl.String(),
    "name_script": pl.String(),  # hanzi | latin | mixed
    "id_type_std": pl.String(),  # CN_RESIDENT | PASSPORT | HK_MACAU_PERMIT | TAIWAN_PERMIT | OTHER
    "id_number_std": pl.String(),  # normalized; 15-digit resident IDs converted to 18
    "id_valid": pl.Boolean(),  # GB 11643 check passes (resident IDs); format check for others
    "id_birth_date": pl.Date(),
    "id_sex": pl.String(),
    "birth_date_std": pl.Date(),
    "sex_std": pl.String(),  # M | F
    "mobiles": pl.List(pl.String()),  # E.164 mobile numbers
    "phones": pl.List(pl.String()),  # E.164 landlines and other non-mobile numbers
    "emails": pl.List(pl.String()),  # normalized e-mail addresses
    "email_keys": pl.List(pl.String()),  # alias-folded keys (foxmail.com -> qq.com, dots/plus rules)
    "addr_province": pl.String(),
    "addr_city": pl.String(),
    "addr_district": pl.String(),
    "addr_detail": pl.String(),
    "address_std": pl.String(),  # province+city+district+detail, abbreviations expanded
    "bank_cards": pl.List(pl.String()),
    "bank_card_valid": pl.Boolean(),
}
