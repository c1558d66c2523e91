"""Persistence of the steward workbench: review tasks, append-only decisions and four-eyes merge requests.

A mixin of ``Store``. Every run's review band becomes tasks (``sync_review_tasks``, called by
``save_match_result``); a task is claimed with one conditional UPDATE so two stewards cannot both hold
it; decisions are never deleted, only stamped ``revoked_at``; merge requests wait for a second steward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from mdm.errors import Conflict, MdmError, NotFound
from mdm.matching.cluster import id_conflicts
from mdm.privacy import mask
from mdm.store.api_repo import ApiRepo
from mdm.store.golden_repo import GoldenRepo

REVIEW_DDL: list[str] = [
    "CREATE SEQUENCE IF NOT EXISTS review_task_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS review_decision_seq START 1",
    "CREATE SEQUENCE IF NOT EXISTS merge_request_seq START 1",
    """CREATE TABLE IF NOT EXISTS review_tasks (
    task_id BIGINT PRIMARY KEY,
    run_id INTEGER NOT NULL,
    last_run INTEGER NOT NULL,
    rid_l BIGINT NOT NULL,
    rid_r BIGINT NOT NULL,
    probability DOUBLE NOT NULL,
    match_weight DOUBLE NOT NULL,
    impact DOUBLE NOT NULL,
    reasons VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    assignee VARCHAR,
    claimed_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    decided_at TIMESTAMPTZ,
    expired_run INTEGER,
    hash_l VARCHAR,
    hash_r VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS review_decisions (
    decision_id BIGINT PRIMARY KEY,
    task_id BIGINT,
    rid_l BIGINT NOT NULL,
    rid_r BIGINT NOT NULL,
    decision VARCHAR NOT NULL,
    "user" VARCHAR NOT NULL,
    note VARCHAR,
    link_id BIGINT,
    hash_l VARCHAR,
    hash_r VARCHAR,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_by VARCHAR,
    revoke_note VARCHAR
)""",
    """CREATE TABLE IF NOT EXISTS merge_requests (
    request_id BIGINT PRIMARY KEY,
    customer_a VARCHAR NOT NULL,
    customer_b VARCHAR NOT NULL,
    requested_by VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    decided_by VARCHAR,
    decided_at TIMESTAMPTZ,
    decision_reason VARCHAR,
    result_customer VARCHAR
)""",
]

DECISIONS: dict[str, str | None] = {"match": "must", "no-match": "cannot", "unsure": None}
TASK_STATUSES = ("open", "claimed", "decided", "expired")

#: Weights of the impact score: a sensitive pair outranks any merely uncertain one.
W_SIZE, W_IDS, W_SURNAME = 0.25, 2.0, 1.0

_TASK_COLUMNS = """t.task_id, t.run_id, t.rid_l, t.rid_r, kl.source AS left_source, kl.source_key AS left_key,
    kr.source AS right_source, kr.source_key AS right_key, t.probability, t.impact, t.reasons, t.status,
    t.assignee, t.created_at, t.decided_at"""
_PAIR_KEYS = ["rid_l", "rid_r"]


def task_impact(cand: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """Impact and reasons of candidate pairs; why a steward should look at one pair before another.

    ``cand``: rid_l, rid_r, match_weight (log2 odds), ...; ``members``: unit (current customer, or the
    record itself when it has none), rid, id_type_std, id_number_std, id_valid, surname, surname_pinyin,
    name_script of every record of every unit a pair record belongs to. Impact adds uncertainty
    (1 at probability 0.5, falling with the absolute log-odds), the log size of the two customers the pair
    would join, and boosts when those customers hold different valid ID numbers of one type or the two
    records' surnames differ.
    """
    members = members.with_columns(
        pl.col("rid").cast(pl.Int64),
        pl.col("unit", "id_type_std", "id_number_std", "surname", "surname_pinyin", "name_script").cast(
            pl.String
        ),
        pl.col("id_valid").cast(pl.Boolean),
    )
    cand = cand.with_columns(pl.col("rid_l", "rid_r").cast(pl.Int64))
    unit = members.select("rid", "unit").unique("rid")
    size = members.group_by("unit").agg(pl.col("rid").n_unique().alias("n"))
    docs = id_conflicts(members).join(unit, on="rid").select("unit", "id_type", "doc").unique()
    names = members.select(
        "rid",
        pl.when(pl.col("name_script") == "hanzi")
        .then(pl.col("surname"))
        .otherwise(pl.col("surname_pinyin"))
        .alias("sn"),
        (pl.col("name_script") == "hanzi").alias("hz"),
    ).unique("rid")
    base = (
        cand.join(unit.rename({"rid": "rid_l", "unit": "u_l"}), on="rid_l", how="left")
        .join(unit.rename({"rid": "rid_r", "unit": "u_r"}), on="rid_r", how="left")
        .join(size.rename({"unit": "u_l", "n": "n_l"}), on="u_l", how="left")
        .join(size.rename({"unit": "u_r", "n": "n_r"}), on="u_r", how="left")
    )
    clash = (
        base.select(*_PAIR_KEYS, "u_l", "u_r")
        .join(docs.rename({"unit": "u_l", "doc": "doc_l"}), on="u_l")
        .join(docs.rename({"unit": "u_r", "doc": "doc_r"}), on=["u_r", "id_type"])
        .filter(pl.col("doc_l") != pl.col("doc_r"))
        .select(*_PAIR_KEYS)
        .unique()
        .with_columns(pl.lit(True).alias("ids_differ"))
    )
    scored = (
        base.join(names.rename({"rid": "rid_l", "sn": "sn_l", "hz": "hz_l"}), on="rid_l", how="left")
        .join(names.rename({"rid": "rid_r", "sn": "sn_r", "hz": "hz_r"}), on="rid_r", how="left")
        .join(clash, on=_PAIR_KEYS, how="left")
        .with_columns(
            pl.col("ids_differ").fill_null(False),
            ((pl.col("sn_l") != pl.col("sn_r")) & (pl.col("hz_l") == pl.col("hz_r")))
            .fill_null(False)
            .alias("sn_differ"),
            (1.0 / (1.0 + pl.col("match_weight").abs())).alias("uncertainty"),
            (pl.col("n_l").fill_null(1) + pl.col("n_r").fill_null(1)).alias("joined"),
        )
    )
    impact = (
        pl.col("uncertainty")
        + W_SIZE * (pl.col("joined").cast(pl.Float64).log(2) - 1.0)
        + W_IDS * pl.col("ids_differ").cast(pl.Float64)
        + W_SURNAME * pl.col("sn_differ").cast(pl.Float64)
    )
    reasons = pl.concat_list(
        pl.when(pl.col("ids_differ")).then(pl.lit("different valid IDs")),
        pl.when(pl.col("sn_differ")).then(pl.lit("surname differs")),
        pl.when(pl.col("joined") > 2).then(pl.format("joins {} records", pl.col("joined"))),
        pl.when(pl.col("match_weight").abs() < 1.0).then(pl.lit("uncertain")),
    ).list.drop_nulls()
    return scored.select(
        *cand.columns,
        impact.round(4).alias("impact"),
        reasons.list.join("; ").alias("reasons"),
    )


class ReviewRepo(GoldenRepo, ApiRepo):
    """Store methods of the steward workbench."""

    # ----- tasks from a run ---------------------------------------------------------

    def sync_review_tasks(self, run_id: int, scored: pl.DataFrame, review: pl.DataFrame) -> dict[str, int]:
        """Turn a run's review band into tasks (``scored``: every pair the run scored; both frames have
        rid_l, rid_r, match_probability, match_weight).

        A pair with an open or claimed task keeps it (its score refreshed); open tasks of pairs that
        left the band expire; a pair with an active decision gets no new task, except a "no-match"
        pair one of whose records changed since the decision, which comes back whenever it is scored.
        """
        cols = ["rid_l", "rid_r", "match_probability", "match_weight"]
        with self.transaction() as con:
            con.register("rt_scored", scored.select(cols).to_arrow())
            con.register("rt_review", review.select(cols).to_arrow())
            cand = con.execute(
                """SELECT rid_l, rid_r, match_probability, match_weight FROM rt_review
                UNION
                SELECT s.rid_l, s.rid_r, s.match_probability, s.match_weight FROM rt_scored s
                JOIN review_decisions d ON d.rid_l = s.rid_l AND d.rid_r = s.rid_r
                JOIN current_records hl ON hl.rid = s.rid_l
                JOIN current_records hr ON hr.rid = s.rid_r
                WHERE d.decision = 'no-match' AND d.revoked_at IS NULL
                    AND (d.hash_l IS DISTINCT FROM hl.content_hash OR d.hash_r IS DISTINCT FROM hr.content_hash)
                ORDER BY rid_l, rid_r"""
            ).pl()
            con.unregister("rt_scored")
            con.unregister("rt_review")
            ranked = task_impact(cand, self._pair_members(cand))
            con.register("rt_cand", ranked.to_arrow())
            try:
                (refreshed,) = con.execute(
                    """UPDATE review_tasks SET last_run = ?, probability = c.match_probability,
                        match_weight = c.match_weight, impact = c.impact, reasons = c.reasons
                    FROM rt_cand c WHERE review_tasks.rid_l = c.rid_l AND review_tasks.rid_r = c.rid_r
                        AND review_tasks.status IN ('open', 'claimed')""",
                    [run_id],
                ).fetchone()  # type: ignore[misc]
                (expired,) = con.execute(
                    """UPDATE review_tasks SET status = 'expired', expired_run = ?
                    WHERE status = 'open' AND NOT EXISTS (
                        SELECT 1 FROM rt_cand c WHERE c.rid_l = review_tasks.rid_l AND c.rid_r = review_tasks.rid_r)""",
                    [run_id],
                ).fetchone()  # type: ignore[misc]
                (created,) = con.execute(
                    """INSERT INTO review_tasks (task_id, run_id, last_run, rid_l, rid_r, probability, match_weight,
                        impact, reasons, status, created_at, hash_l, hash_r)
                    SELECT nextval('review_task_seq'), ?, ?, c.rid_l, c.rid_r, c.match_probability,
                        c.match_weight, c.impact, c.reasons, 'open', now(), hl.content_hash, hr.content_hash
                    FROM (SELECT * FROM rt_cand ORDER BY impact DESC, rid_l, rid_r) c
                    LEFT JOIN current_records hl ON hl.rid = c.rid_l
                    LEFT JOIN current_records hr ON hr.rid = c.rid_r
                    WHERE NOT EXISTS (SELECT 1 FROM review_tasks t WHERE t.rid_l = c.rid_l AND t.rid_r = c.rid_r
                            AND t.status IN ('open', 'claimed'))
                        AND NOT EXISTS (SELECT 1 FROM review_decisions d
                            WHERE d.rid_l = c.rid_l AND d.rid_r = c.rid_r AND d.revoked_at IS NULL
                                AND (d.decision = 'match' OR (d.decision = 'no-match'
                                    AND d.hash_l IS NOT DISTINCT FROM hl.content_hash
                                    AND d.hash_r IS NOT DISTINCT FROM hr.content_hash)))""",
                    [run_id, run_id],
                ).fetchone()  # type: ignore[misc]
            finally:
                con.unregister("rt_cand")
        return {
            "tasks_created": int(created),
            "tasks_refreshed": int(refreshed),
            "tasks_expired": int(expired),
        }

    def _pair_members(self, cand: pl.DataFrame) -> pl.DataFrame:
        """Every current record of the customers the candidate pairs' records belong to (see task_impact)."""
        rids = pl.concat([cand["rid_l"], cand["rid_r"]]).unique().to_list()
        return self.query(
            """WITH p AS (SELECT unnest(?::BIGINT[]) AS rid),
            u AS (SELECT p.rid, coalesce(x.customer_id, 'rid:' || p.rid) AS unit FROM p
                LEFT JOIN xref x ON x.rid = p.rid AND x.valid_to_run IS NULL),
            m AS (SELECT DISTINCT u.unit, coalesce(x.rid, u.rid) AS rid FROM u
                LEFT JOIN xref x ON x.customer_id = u.unit AND x.valid_to_run IS NULL)
            SELECT m.unit, m.rid, c.id_type_std, c.id_number_std, c.id_valid, c.surname, c.surname_pinyin,
                c.name_script
            FROM m LEFT JOIN current_records c ON c.rid = m.rid ORDER BY m.rid""",
            [rids],
        )

    # ----- reading tasks ------------------------------------------------------------

    def review_tasks(
        self,
        *,
        status: str | None = "open",
        source: str | None = None,
        assignee: str | None = None,
        order: str = "impact",
        limit: int = 100,
        offset: int = 0,
        task_id: int | None = None,
    ) -> pl.DataFrame:
        """Tasks with both records' source keys, filtered, highest impact (or oldest) first."""
        if status is not None and status not in TASK_STATUSES:
            raise MdmError(f"unknown task status {status!r}; one of {', '.join(TASK_STATUSES)}")
        orders = {"impact": "t.impact DESC, t.task_id", "oldest": "t.created_at, t.task_id"}
        if order not in orders:
            raise MdmError(f"unknown order {order!r}; one of {', '.join(orders)}")
        return self.query(
            f"""SELECT {_TASK_COLUMNS}
            FROM review_tasks t JOIN record_keys kl ON kl.rid = t.rid_l JOIN record_keys kr ON kr.rid = t.rid_r
            WHERE (CAST($status AS VARCHAR) IS NULL OR t.status = $status)
                AND (CAST($source AS VARCHAR) IS NULL OR $source IN (kl.source, kr.source))
                AND (CAST($assignee AS VARCHAR) IS NULL OR t.assignee = $assignee)
                AND (CAST($task AS BIGINT) IS NULL OR t.task_id = $task)
            ORDER BY {orders[order]} LIMIT $limit OFFSET $offset""",
            {
                "status": status,
                "source": source,
                "assignee": assignee,
                "task": task_id,
                "limit": limit,
                "offset": offset,
            },
        )

    def review_task(self, task_id: int) -> dict[str, Any]:
        """One task as a row of :meth:`review_tasks` plus its last run; NotFound when there is none."""
        rows = self.review_tasks(status=None, task_id=task_id, limit=1).to_dicts()
        if not rows:
            raise NotFound(f"no review task {task_id}")
        (last_run,) = self.con.execute(
            "SELECT last_run FROM review_tasks WHERE task_id = ?", [task_id]
        ).fetchone()  # type: ignore[misc]
        return {**rows[0], "last_run": int(last_run)}

    def pair_detail(self, rid_l: int, rid_r: int, run_id: int) -> dict[str, Any] | None:
        """The scored pair (weights and per-comparison ``detail`` JSON) of a run's band, else of the latest run."""
        rows = self.query(
            """SELECT match_weight, match_probability, detail, 0 AS pref FROM review_pairs
                WHERE run_id = ? AND rid_l = ? AND rid_r = ?
            UNION ALL SELECT match_weight, match_probability, detail, 1 FROM match_pairs WHERE rid_l = ? AND rid_r = ?
            ORDER BY pref LIMIT 1""",
            [run_id, rid_l, rid_r, rid_l, rid_r],
        ).to_dicts()
        return rows[0] if rows else None

    def record_version(self, rid: int) -> dict[str, Any]:
        """The latest stored version of a record with its open customer; NotFound for an unknown rid."""
        rows = self.query(
            """SELECT r.*, x.customer_id FROM records r
            LEFT JOIN xref x ON x.rid = r.rid AND x.valid_to_run IS NULL
            WHERE r.rid = ? ORDER BY r.version DESC LIMIT 1""",
            [rid],
        ).to_dicts()
        if not rows:
            raise NotFound(f"no record {rid}")
        return rows[0]

    def pair_decisions(self, rid_l: int, rid_r: int) -> pl.DataFrame:
        """Every decision ever taken on a pair (revoked ones included), oldest first."""
        return self.query(
            """SELECT decision_id, task_id, decision, "user", note, link_id, created_at, revoked_at, revoked_by,
                revoke_note FROM review_decisions WHERE rid_l = ? AND rid_r = ? ORDER BY decision_id""",
            [min(rid_l, rid_r), max(rid_l, rid_r)],
        )

    # ----- claiming and deciding ----------------------------------------------------

    def _task_state(self, task_id: int) -> tuple[str, str | None]:
        """Status and assignee of a task; NotFound when there is none."""
        row = self.con.execute(
            "SELECT status, assignee FROM review_tasks WHERE task_id = ?", [task_id]
        ).fetchone()
        if row is None:
            raise NotFound(f"no review task {task_id}")
        return str(row[0]), row[1]

    def _refuse(self, task_id: int, user: str) -> Conflict:
        """The Conflict explaining why ``user`` may not take ``task_id`` (NotFound raised when missing)."""
        status, assignee = self._task_state(task_id)
        if status == "claimed" and assignee != user:
            return Conflict(f"task {task_id} is claimed by {assignee}")
        return Conflict(f"task {task_id} is {status}")

    def claim_review_task(self, task_id: int, user: str) -> dict[str, Any]:
        """Claim an open task (or re-claim one's own) with one conditional UPDATE; Conflict otherwise."""
        try:
            with self.transaction() as con:
                done = con.execute(
                    """UPDATE review_tasks SET status = 'claimed', assignee = ?, claimed_at = now()
                    WHERE task_id = ? AND (status = 'open' OR (status = 'claimed' AND assignee = ?))
                    RETURNING task_id""",
                    [user, task_id, user],
                ).fetchall()
        except duckdb.TransactionException as exc:
            raise Conflict(f"task {task_id} was claimed concurrently") from exc
        if not done:
            raise self._refuse(task_id, user)
        self.log_steward_action(
            "task_claimed", None, None, user, None, f"task {task_id}", f"task:{task_id}", event=False
        )
        return self.review_task(task_id)

    def release_review_task(self, task_id: int, user: str) -> None:
        """Give a claimed task back to the queue; only its assignee may."""
        with self.transaction() as con:
            done = con.execute(
                """UPDATE review_tasks SET status = 'open', assignee = NULL, claimed_at = NULL
                WHERE task_id = ? AND status = 'claimed' AND assignee = ? RETURNING task_id""",
                [task_id, user],
            ).fetchall()
        if not done:
            raise self._refuse(task_id, user)
        self.log_steward_action(
            "task_released", None, None, user, None, f"task {task_id}", f"task:{task_id}", event=False
        )

    def add_review_decision(
        self, task_id: int, decision: str, user: str, note: str | None = None
    ) -> dict[str, Any]:
        """Close a task with a decision: match -> must-link, no-match -> cannot-link, unsure -> note only.

        The task must be open or claimed by ``user``. Earlier active decisions on the same pair are
        revoked as superseded. Writes an ID event and an audit entry; all or nothing.
        """
        if decision not in DECISIONS:
            raise MdmError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        if decision == "unsure" and not (note or "").strip():
            raise MdmError("an unsure decision needs a note")
        try:
            with self.transaction() as con:
                row = con.execute(
                    """UPDATE review_tasks SET status = 'decided', decided_at = now(), assignee = ?
                    WHERE task_id = ? AND (status = 'open' OR (status = 'claimed' AND assignee = ?))
                    RETURNING rid_l, rid_r""",
                    [user, task_id, user],
                ).fetchone()
                if row is None:
                    raise self._refuse(task_id, user)
                rid_l, rid_r = int(row[0]), int(row[1])
                for old in (
                    self.pair_decisions(rid_l, rid_r).filter(pl.col("revoked_at").is_null()).to_dicts()
                ):
                    self._revoke_decision(old, user, "superseded by a later decision")
                kind = DECISIONS[decision]
                link_id = None if kind is None else self.add_link(kind, rid_l, rid_r, user, f"task {task_id}")
                (decision_id,) = con.execute(
                    """INSERT INTO review_decisions (decision_id, task_id, rid_l, rid_r, decision, "user", note,
                        link_id, hash_l, hash_r, created_at)
                    SELECT nextval('review_decision_seq'), ?, ?, ?, ?, ?, ?, ?,
                        (SELECT content_hash FROM current_records WHERE rid = ?),
                        (SELECT content_hash FROM current_records WHERE rid = ?), now()
                    RETURNING decision_id""",
                    [task_id, rid_l, rid_r, decision, user, note, link_id, rid_l, rid_r],
                ).fetchone()  # type: ignore[misc]
                detail = f"task {task_id}: {decision}" + (f"; link {link_id}" if link_id else "")
                self.log_steward_action("review_decided", None, rid_l, user, note, detail, f"task:{task_id}")
        except duckdb.TransactionException as exc:
            raise Conflict(f"task {task_id} was decided concurrently") from exc
        return {"decision_id": int(decision_id), "task_id": task_id, "decision": decision, "link_id": link_id}

    def _revoke_decision(self, row: dict[str, Any], user: str, note: str | None) -> None:
        """Stamp one active decision revoked and revoke its link when that is still active."""
        self.con.execute(
            """UPDATE review_decisions SET revoked_at = now(), revoked_by = ?, revoke_note = ?
            WHERE decision_id = ? AND revoked_at IS NULL""",
            [user, note, row["decision_id"]],
        )
        link_id = row.get("link_id")
        if (
            link_id is not None
            and self.con.execute(
                "SELECT 1 FROM steward_links WHERE link_id = ? AND revoked_at IS NULL", [link_id]
            ).fetchone()
        ):
            self.revoke_link(int(link_id), user)

    def revoke_review_decision(self, decision_id: int, user: str, note: str | None = None) -> None:
        """Revoke a decision (the row stays, stamped) and its link; the pair may come back to the queue."""
        with self.transaction():
            rows = self.query(
                "SELECT decision_id, rid_l, link_id, revoked_at FROM review_decisions WHERE decision_id = ?",
                [decision_id],
            ).to_dicts()
            if not rows:
                raise NotFound(f"no decision {decision_id}")
            if rows[0]["revoked_at"] is not None:
                raise Conflict(f"decision {decision_id} is already revoked")
            self._revoke_decision(rows[0], user, note)
            self.log_steward_action(
                "review_revoked",
                None,
                int(rows[0]["rid_l"]),
                user,
                note,
                f"decision {decision_id} revoked",
                f"decision:{decision_id}",
            )

    def review_labels(self) -> pl.DataFrame:
        """Active match / no-match decisions as pairwise labels with both records' source keys."""
        return self.query(
            """SELECT kl.source AS left_source, kl.source_key AS left_key, kr.source AS right_source,
                kr.source_key AS right_key, d.decision AS label, d."user" AS "user", d.created_at AS decided_at
            FROM review_decisions d JOIN record_keys kl ON kl.rid = d.rid_l JOIN record_keys kr ON kr.rid = d.rid_r
            WHERE d.revoked_at IS NULL AND d.decision IN ('match', 'no-match') ORDER BY d.decision_id"""
        )

    # ----- audit trail --------------------------------------------------------------

    def log_steward_action(
        self,
        kind: str,
        customer_id: str | None,
        rid: int | None,
        user: str,
        reason: str | None,
        detail: str,
        target: str | None = None,
        event: bool = True,
    ) -> None:
        """An ID event (unless ``event`` is false) and a hash-chained audit entry for one steward action.

        Free text (the reason) is masked: a steward may have typed an identifier into it.
        """
        reason_text = mask(reason) if reason else None
        if event:
            self._event(
                kind, customer_id, rid, user, detail + (f"; reason: {reason_text}" if reason_text else "")
            )
        self.audit(
            action=f"steward.{kind}",
            user=user,
            role="steward",
            target=target or customer_id,
            reason=reason_text,
            detail=detail,
        )

    # ----- customers ----------------------------------------------------------------

    def customers_hold_different_ids(self, customer_a: str, customer_b: str) -> bool:
        """Whether two customers hold different valid ID numbers of one document type."""
        members = self.query(
            """SELECT x.customer_id, c.rid, c.id_type_std, c.id_number_std, c.id_valid
            FROM xref x JOIN current_records c ON c.rid = x.rid
            WHERE x.valid_to_run IS NULL AND x.customer_id IN (?, ?)""",
            [customer_a, customer_b],
        )
        docs = id_conflicts(members).join(members.select("rid", "customer_id"), on="rid")
        a = docs.filter(pl.col("customer_id") == customer_a).select("id_type", pl.col("doc").alias("doc_a"))
        b = docs.filter(pl.col("customer_id") == customer_b).select("id_type", pl.col("doc").alias("doc_b"))
        return a.join(b, on="id_type").filter(pl.col("doc_a") != pl.col("doc_b")).height > 0

    def active_links_between(self, rids_a: Sequence[int], rids_b: Sequence[int], kind: str) -> list[int]:
        """Ids of active steward links of ``kind`` joining a record of ``rids_a`` to one of ``rids_b``."""
        return [
            int(v)
            for v in self.query(
                """SELECT link_id FROM steward_links WHERE revoked_at IS NULL AND kind = ?
                AND ((rid_a IN (SELECT unnest(?::BIGINT[])) AND rid_b IN (SELECT unnest(?::BIGINT[])))
                  OR (rid_b IN (SELECT unnest(?::BIGINT[])) AND rid_a IN (SELECT unnest(?::BIGINT[]))))
                ORDER BY link_id""",
                [kind, list(rids_a), list(rids_b), list(rids_a), list(rids_b)],
            )["link_id"].to_list()
        ]

    def revoke_record_pins(self, rid: int, user: str) -> int:
        """Revoke every active pin of a record to a customer (with an ``unpinned`` event each)."""
        with self.transaction() as con:
            rows = con.execute(
                """UPDATE pins SET revoked_at = now(), revoked_by = ?
                WHERE kind = 'record' AND rid = ? AND revoked_at IS NULL RETURNING pin_id, customer_id""",
                [user, rid],
            ).fetchall()
            for pin_id, customer_id in rows:
                self._event("unpinned", customer_id, rid, user, f"pin {pin_id} revoked by a split")
        return len(rows)

    def customer_seq(self, customer_id: str) -> int | None:
        """Sequence number of a customer ID (lower is older)."""
        row = self.con.execute("SELECT seq FROM customers WHERE customer_id = ?", [customer_id]).fetchone()
        return None if row is None else int(row[0])

    # ----- four eyes ----------------------------------------------------------------

    def add_merge_request(self, customer_a: str, customer_b: str, user: str, reason: str) -> int:
        """A pending merge of two customers that a second steward must approve."""
        with self.transaction() as con:
            (request_id,) = con.execute(
                """INSERT INTO merge_requests (request_id, customer_a, customer_b, requested_by, reason, status,
                    created_at) VALUES (nextval('merge_request_seq'), ?, ?, ?, ?, 'pending', now())
                RETURNING request_id""",
                [customer_a, customer_b, user, mask(reason)],
            ).fetchone()  # type: ignore[misc]
            self.log_steward_action(
                "merge_requested",
                customer_a,
                None,
                user,
                reason,
                f"merge of {customer_a} and {customer_b} awaits a second steward (request {request_id})",
                f"merge_request:{request_id}",
            )
        return int(request_id)

    def merge_request(self, request_id: int) -> dict[str, Any]:
        """One merge request; NotFound when there is none."""
        rows = self.query("SELECT * FROM merge_requests WHERE request_id = ?", [request_id]).to_dicts()
        if not rows:
            raise NotFound(f"no merge request {request_id}")
        return rows[0]

    def merge_requests(self, status: str | None = "pending") -> pl.DataFrame:
        """Merge requests (pending ones by default), oldest first."""
        return self.query(
            """SELECT * FROM merge_requests WHERE CAST(? AS VARCHAR) IS NULL OR status = ?
            ORDER BY request_id""",
            [status, status],
        )

    def close_merge_request(
        self, request_id: int, user: str, reason: str, status: str, result_customer: str | None
    ) -> None:
        """Mark a pending request approved (or void); Conflict when it is no longer pending."""
        done = self.con.execute(
            """UPDATE merge_requests SET status = ?, decided_by = ?, decided_at = now(), decision_reason = ?,
                result_customer = ? WHERE request_id = ? AND status = 'pending' RETURNING request_id""",
            [status, user, mask(reason), result_customer, request_id],
        ).fetchall()
        if not done:
            raise Conflict(f"merge request {request_id} is not pending")
