"""`reclaim temporal`: prepare a Temporal namespace for Reclaim, and rotate payload keys."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from reclaim.cli.common import settings_for_command, with_dev_secret

app = typer.Typer(help="Prepare a Temporal cluster for Reclaim.", no_args_is_help=True)


@app.command("setup")
def temporal_setup(
    create_namespace: Annotated[
        bool,
        typer.Option(
            "--create-namespace",
            help="Register the namespace first if it does not exist (a self-hosted cluster; "
            "on Temporal Cloud namespaces are made in Cloud).",
        ),
    ] = False,
    retention_days: Annotated[
        int, typer.Option(min=1, help="How long a created namespace keeps closed cases.")
    ] = 30,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the server to answer.")
    ] = 60,
) -> None:
    """Register Reclaim's search attributes on the configured namespace (idempotent)."""
    from reclaim.temporal.connection import (
        connect_when_up,
        ensure_namespace,
        register_search_attributes,
    )

    settings = with_dev_secret(settings_for_command())
    namespace = settings.temporal_namespace

    async def work() -> tuple[bool, list[str]]:
        client = await connect_when_up(settings, wait_up_to=wait)
        created = False
        if create_namespace:
            created = await ensure_namespace(client, namespace, retention_days)
        return created, await register_search_attributes(client, namespace, wait_up_to=wait)

    created, added = asyncio.run(work())
    if created:
        typer.echo(f"created namespace {namespace} (closed cases kept {retention_days} days)")
    typer.echo(
        f"registered on {namespace}: {', '.join(added)}"
        if added
        else f"search attributes already on {namespace}"
    )


@app.command("new-codec-key")
def temporal_new_codec_key(
    key_id: Annotated[str, typer.Option("--id", help="A name for the key, e.g. 2026-11.")],
    keep: Annotated[
        str | None,
        typer.Option(help="The current RECLAIM_CODEC_KEYS, kept after the new key to decrypt."),
    ] = None,
) -> None:
    """Print a fresh AES-256 key for RECLAIM_CODEC_KEYS (the first key encrypts)."""
    from reclaim.temporal.codec import new_key_spec, parse_keys

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", key_id):
        raise typer.BadParameter("letters, digits, '.', '_' or '-', at most 40", param_hint="--id")
    spec = new_key_spec(key_id)
    if keep:
        known = [existing for existing, _ in parse_keys(keep)]
        if key_id in known:
            raise typer.BadParameter(f"{key_id} is already a key id", param_hint="--id")
        spec = f"{spec},{keep}"
    typer.echo(spec)
