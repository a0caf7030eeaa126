"""`reclaim temporal`: prepare a Temporal namespace for Reclaim, rotate payload keys, and make
the certificates of mTLS to a self-hosted frontend."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
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


@app.command("set-current-build")
def temporal_set_current_build(
    build_id: Annotated[str, typer.Option("--build-id", help="The build to make current.")],
    deployment: Annotated[
        str | None,
        typer.Option(help="The worker deployment (default RECLAIM_WORKER_DEPLOYMENT)."),
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for a worker of that build to poll.")
    ] = 60,
) -> None:
    """Send every case's next task to BUILD's workers (worker versioning): run it once the
    new build's workers poll, then stop the old ones (docs/deploy.md, upgrading)."""
    from reclaim.temporal.connection import connect_when_up
    from reclaim.temporal.deployments import set_current_build

    settings = with_dev_secret(settings_for_command())
    name = deployment or settings.worker_deployment
    if not name:
        raise typer.BadParameter("give --deployment or set RECLAIM_WORKER_DEPLOYMENT")

    async def work() -> dict[str, str]:
        client = await connect_when_up(settings, wait_up_to=wait)
        return (await set_current_build(client, name, build_id, wait)).builds

    try:
        builds = asyncio.run(work())
    except TimeoutError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    listed = ", ".join(f"{build} ({status})" for build, status in sorted(builds.items()))
    typer.echo(f"{name}: build {build_id} is current; builds: {listed}")


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


@app.command("certs")
def temporal_certs(
    out: Annotated[Path, typer.Option("--out", help="The directory to write them into.")],
    dns: Annotated[
        list[str] | None,
        typer.Option(
            "--dns",
            help="A DNS name of the frontend, as clients dial it (repeat for more; the first "
            "names the certificate). Default: temporal, the compose file's service.",
        ),
    ] = None,
    ip: Annotated[
        list[str] | None, typer.Option("--ip", help="An IP address of the frontend (repeat).")
    ] = None,
    client: Annotated[
        list[str] | None,
        typer.Option(
            "--client",
            help="A client certificate to make, by name (repeat). Default: reclaim (the API, "
            "the workers, the setup) and temporal-ui (the Web UI).",
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="How long the leaf certificates last.")] = 365,
) -> None:
    """Make the certificates for mTLS to a self-hosted Temporal frontend: a CA, the server's
    certificate and the clients' (keys 0600; nothing is overwritten)."""
    from reclaim.temporal.certs import CertsExist, write_certs

    try:
        written = write_certs(
            out,
            dns_names=dns or ["temporal"],
            ip_addresses=ip or [],
            clients=client or ["reclaim", "temporal-ui"],
            days=days,
        )
    except CertsExist as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    for path in written.files:
        typer.echo(str(path))
    typer.echo(
        f"Keep {out / 'ca.key'} out of every container: it signs new certificates.", err=True
    )
