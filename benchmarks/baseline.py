"""Plain Splink, the bar to beat: the settings of ../shared/eval/BASELINE.md on our raw fields.

The flat table is what a careful analyst builds before calling Splink: name and ID number as written,
birth date parsed where a common format parses, last 11 digits of the first mobile, lower-cased e-mail,
address as written. No pinyin, no ID repair, no hubs, no constraints; connected components.
"""

from __future__ import annotations

import duckdb
import polars as pl

FLAT_SQL = """
SELECT rid AS unique_id, source, source_key,
       nullif(trim(name), '') AS name,
       nullif(trim(id_number), '') AS id_number,
       strftime(coalesce(
           try_strptime(left(trim(birth_date), 10), ['%Y-%m-%d', '%Y/%m/%d', '%Y%m%d', '%m/%d/%Y', '%Y.%m.%d']),
           try_strptime(trim(birth_date), ['%Y年%m月%d日'])), '%Y-%m-%d') AS birth_date,
       nullif(right(regexp_replace(coalesce(mobile[1], ''), '[^0-9]', '', 'g'), 11), '') AS mobile,
       nullif(lower(trim(email[1])), '') AS email,
       nullif(trim(address), '') AS address
FROM frame
"""


def flat_table(records: pl.DataFrame) -> pl.DataFrame:
    """The analyst's flat table from raw canonical columns (rid, source, source_key, raw fields)."""
    con = duckdb.connect()
    con.register("frame", records.to_arrow())
    return con.execute(FLAT_SQL).pl()


def plain_splink(
    records: pl.DataFrame, thresholds: tuple[float, ...] = (0.5, 0.9, 0.99)
) -> dict[float, pl.DataFrame]:
    """Cluster with plain Splink at each threshold; returns rid -> cluster_id frames by threshold."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    flat = flat_table(records).drop("source", "source_key")
    db_api = DuckDBAPI(connection=duckdb.connect())
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("id_number"),
            block_on("mobile"),
            block_on("email"),
            block_on("name", "birth_date"),
            block_on("name", "address"),
        ],
        comparisons=[
            cl.NameComparison("name").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("id_number", 2),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.ExactMatch("mobile"),
            cl.EmailComparison("email"),
            cl.LevenshteinAtThresholds("address", [3, 10]),
        ],
    )
    df = db_api.register(flat.to_arrow(), dataset_display_name="flat")
    linker = Linker(df, settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("id_number"), block_on("mobile")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in ("id_number", "mobile", "birth_date"):
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(rule))
    pred = linker.inference.predict(threshold_match_probability=min(thresholds))
    out: dict[float, pl.DataFrame] = {}
    for t in thresholds:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            pred, threshold_match_probability=t
        )
        frame = pl.from_arrow(clusters.as_duckdbpyrelation().select("unique_id, cluster_id").arrow())
        assert isinstance(frame, pl.DataFrame)
        out[t] = frame.rename({"unique_id": "rid"}).with_columns(pl.col("cluster_id").cast(pl.String))
    return out
