"""`mdm compliance report`, `mdm retention apply`, `mdm partner export`, `mdm webhook add|list|deliver`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from mdm.cli_common import DEFAULT_DB, ConfigOption, DbOption, fail, open_store
from mdm.config import load_sources
from mdm.errors import MdmError

compliance_app = typer.Typer(help="Compliance self-check (PIPL, JR/T 0171).", no_args_is_help=True)
retention_app = typer.Typer(help="Erase records past their source's retention.", no_args_is_help=True)
partner_app = typer.Typer(help="Exports to partners under a sharing profile.", no_args_is_help=True)
webhook_app = typer.Typer(help="Signed change-event deliveries to partners.", no_args_is_help=True)

ProfilesOption = Annotated[
    Path | None, typer.Option("--profiles", help="Folder of partner profiles (default: the shipped ones).")
]
UserOption = Annotated[str | None, typer.Option("--user", help="Who acts (default: the OS user).")]
#: Exit code of a report with a blocking finding.
BLOCKED_EXIT = 4


def register(app: typer.Typer) -> None:
    """Add the four sub-apps to the main `mdm` command."""
    app.add_typer(compliance_app, name="compliance")
    app.add_typer(retention_app, name="retention")
    app.add_typer(partner_app, name="partner")
    app.add_typer(webhook_app, name="webhook")


@compliance_app.command("report")
def report(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for compliance.json and compliance.html.")
    ] = Path("compliance"),
    classification: Annotated[
        Path | None, typer.Option("--classification", help="Field classification YAML.")
    ] = None,
    config: ConfigOption = None,
    profiles: ProfilesOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write the self-check; exit 4 when a blocking finding exists (no legal basis, broken audit chain)."""
    from mdm.compliance.classification import load_classification
    from mdm.compliance.report import build_report, write_report
    from mdm.compliance.sharing import load_profiles

    try:
        cfgs = load_sources(config)
        rules = load_classification(classification)
        partners = load_profiles(profiles)
        with open_store(db) as store:
            doc = build_report(store, cfgs, rules, partners)
    except MdmError as exc:
        fail(exc)
    json_path, html_path = write_report(doc, out)
    for finding in doc["findings"]:
        colour = typer.colors.RED if finding["severity"] == "blocking" else typer.colors.YELLOW
        typer.secho(f"{finding['severity']}: {finding['message']}", fg=colour)
    typer.echo(f"wrote {json_path} and {html_path}")
    if doc["blocking"]:
        raise typer.Exit(BLOCKED_EXIT)


@retention_app.command("apply")
def retention_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be erased.")] = False,
    recompute: Annotated[
        bool, typer.Option("--recompute/--no-recompute", help="Run the golden records again afterwards.")
    ] = True,
    user: UserOption = None,
    config: ConfigOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Erase (or restrict under an AML hold) every record past its source's retention."""
    from mdm.compliance.retention import apply_retention

    try:
        cfgs = load_sources(config)
        with open_store(db) as store:
            run = apply_retention(
                store, cfgs, user=user or getpass.getuser(), dry_run=dry_run, recompute=recompute
            )
    except MdmError as exc:
        fail(exc)
    for line in run.lines():
        typer.echo(line)


@partner_app.command("export")
def partner_export(
    profile: Annotated[str, typer.Option("--profile", help="Partner profile name or YAML file.")],
    out: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.jsonl")],
    user: UserOption = None,
    profiles: ProfilesOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write the golden records a partner profile lets out; the export is audited."""
    from mdm.compliance.sharing import export_profile, load_profile

    try:
        chosen = load_profile(profile, profiles)
        with open_store(db) as store:
            result = export_profile(store, chosen, out, user or getpass.getuser())
    except MdmError as exc:
        fail(exc)
    typer.echo(
        f"wrote {result.rows} records for {result.partner} ({result.profile}) to {out}; export {result.export_id}"
    )


@partner_app.command("list")
def partner_list(profiles: ProfilesOption = None) -> None:
    """The partner profiles: fields out and customer filter."""
    from mdm.compliance.sharing import load_profiles

    try:
        found = load_profiles(profiles)
    except MdmError as exc:
        fail(exc)
    rows = [
        {
            "profile": p.name,
            "partner": p.partner,
            "fields": ", ".join(f"{f}:{a}" for f, a in p.fields.items()),
            "bases": ", ".join(p.customers.require_bases or ["any"]),
        }
        for p in found.values()
    ]
    typer.echo(str(pl.DataFrame(rows)))


@webhook_app.command("add")
def webhook_add(
    profile: Annotated[str, typer.Option("--profile", help="Partner profile the feed applies.")],
    url: Annotated[str, typer.Option("--url", help="The partner's HTTPS endpoint.")],
    after: Annotated[int, typer.Option("--after", help="Deliver events after this event id.")] = 0,
    user: UserOption = None,
    profiles: ProfilesOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Register a partner URL; prints the signing secret once (give it to the partner)."""
    from mdm.compliance.sharing import load_profile
    from mdm.compliance.webhooks import webhook_secret
    from mdm.store.compliance_repo import compliance_repo

    try:
        chosen = load_profile(profile, profiles)
        with open_store(db) as store:
            repo = compliance_repo(store)
            sid = repo.add_webhook(chosen.partner, chosen.name, url, user or getpass.getuser(), after)
            secret = webhook_secret(repo.partner_master_key(), chosen.partner).hex()
    except MdmError as exc:
        fail(exc)
    typer.echo(f"subscription {sid} for {chosen.partner}; signing secret (shown once): {secret}")


@webhook_app.command("list")
def webhook_list(db: DbOption = DEFAULT_DB) -> None:
    """Subscriptions with their cursor, and delivery counts."""
    from mdm.store.compliance_repo import compliance_repo

    try:
        with open_store(db) as store:
            repo = compliance_repo(store)
            subs = repo.webhooks()
            log = repo.deliveries()
    except MdmError as exc:
        fail(exc)
    counts = log.group_by("subscription_id").agg(
        (pl.col("status") == "delivered").sum().alias("delivered"),
        (pl.col("status") == "failed").sum().alias("failed_attempts"),
    )
    typer.echo(str(subs.join(counts, on="subscription_id", how="left")))


@webhook_app.command("deliver")
def webhook_deliver(
    subscription: Annotated[
        int | None, typer.Option("--id", help="One subscription (default: every active one).")
    ] = None,
    profiles: ProfilesOption = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Send pending change events, signed, in order, with retries and exponential backoff."""
    from mdm.compliance.webhooks import deliver
    from mdm.store.compliance_repo import compliance_repo

    try:
        with open_store(db) as store:
            subs = compliance_repo(store).webhooks().filter(pl.col("active"))
            ids = [subscription] if subscription is not None else subs["subscription_id"].to_list()
            reports = [deliver(store, int(i), profile_dir=profiles) for i in ids]
    except MdmError as exc:
        fail(exc)
    for rep in reports:
        typer.echo(rep.message())
    if any(r.failed_event is not None for r in reports):
        raise typer.Exit(1)
