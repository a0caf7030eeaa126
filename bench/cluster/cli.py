"""`python -m bench cluster up|status|down|faults`: Reclaim on eight hosts of this machine.

- `up` makes the hosts (network namespaces on a private bridge) and starts them; they keep
  running after the command ends. It prints where the edge, the Web UI and the database are.
- `status` says, per host, its address, its processes and what `/readyz` answers.
- `down` stops everything, removes the namespaces, the links and the folder, and says whether
  anything was left behind (exit 1 if so).
- `upgrade` replaces the workers one host at a time with a changed build while cases are open
  (on a cluster of its own): `bench.cluster.upgrade`.
- `faults` runs each host fault under a steady load (on the cluster that is up in `--dir`, or on
  one of its own, taken down at the end) and reports what users saw.

Needs root (network namespaces), HAProxy and PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cluster import faults, upgrade
from bench.cluster.hosts import STATE, TEMPORAL_UI_PORT, Cluster, ClusterError, cluster_missing
from bench.code_latency import log, machine, positive, save_report
from bench.stack import run_async

NAME = "cluster"
HELP = "Reclaim on eight hosts in network namespaces behind HAProxy; host faults under load."
# Root's own, made 0711 by `up` (PostgreSQL's user walks through it to its data).
DEFAULT_DIR = Path("/tmp/reclaim-cluster")  # noqa: S108


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "status", "down", "faults", "upgrade"))
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"the cluster's folder ({DEFAULT_DIR})"
    )
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="faults: how long each load lasts"
    )
    parser.add_argument("--rate", type=float, default=3.0, help="faults: people per second")
    parser.add_argument(
        "--partition", type=float, default=30.0, help="faults: seconds Temporal is cut off"
    )
    parser.add_argument("--claim-every", type=positive, default=4, help="faults: 1 in N claims")
    parser.add_argument("--recoveries", type=positive, default=1000, help="upgrade: cases")
    parser.add_argument("--held", type=positive, default=100, help="upgrade: of them held")
    parser.add_argument("--claims", type=positive, default=50, help="upgrade: claims")
    parser.add_argument("--hold", type=positive, default=300, help="upgrade: hold seconds")
    parser.add_argument("--output", type=Path, help="JSON results (bench/results/)")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    # SIGTERM as Ctrl-C: whatever was started is stopped and removed on the way out.
    signal.signal(signal.SIGTERM, _interrupted)
    why = cluster_missing()
    if why:
        print(f"bench cluster: cannot run here: {why}")
        return 2
    try:
        if args.action == "up":
            return _up(args.dir)
        if args.action == "status":
            return _status(Cluster.load(args.dir))
        if args.action == "down":
            return _down(Cluster.load(args.dir))
        if args.action == "upgrade":
            return _upgrade(args)
        return _faults(args)
    except ClusterError as err:
        print(f"bench cluster: {err}")
        return 1


def _up(folder: Path) -> int:
    if (folder / STATE).exists():
        print(f"a cluster is already up in {folder}: `python -m bench cluster down` first")
        return 1
    cluster = Cluster.plan(folder)
    began = time.monotonic()
    log(f"starting eight hosts on {cluster.network.subnet}")
    cluster.up()
    log(f"up in {time.monotonic() - began:.1f} s")
    _status(cluster)
    print(
        f"\nthe edge (HAProxy):   {cluster.edge_url}\n"
        f"Temporal's Web UI:    http://{cluster.address('temporal')}:{TEMPORAL_UI_PORT}\n"
        f"Reclaim's database:   {cluster.database_url}\n"
        f"mails, one per file:  {cluster.mail_dir}\n"
        f"supervisor sam's key: {cluster.staff_key}\n"
        f"inside a host:        ip netns exec {cluster.network.hosts['api-1'].netns} …\n"
        f"stop it all:          python -m bench cluster down --dir {folder}"
    )
    return 0


def _status(cluster: Cluster) -> int:
    found = cluster.status()
    for host, what in found.items():
        extra = f"  /readyz: {what['readyz']}" if "readyz" in what else ""
        print(f"{host:<9} {what['address']:<15} {what['processes']} process(es){extra}")
    everyone = all(what["processes"] for what in found.values())
    return 0 if everyone and found["edge"]["readyz"] == "ready" else 1


def _down(cluster: Cluster) -> int:
    left = cluster.down()
    if left:
        print("left behind: " + ", ".join(left))
        return 1
    print("stopped: no namespace, link, process or folder of the cluster is left")
    return 0


def _faults(args: argparse.Namespace) -> int:
    ours = not (args.dir / STATE).exists()
    cluster = Cluster.plan(args.dir) if ours else Cluster.load(args.dir)
    if ours:
        log("starting a cluster of its own")
        cluster.up()
    try:
        report = run_async(_measure(cluster, args))
    finally:
        if ours:
            cluster.down()
    output = save_report("cluster-faults", report, args.output)
    print(table(report))
    log(f"results in {output}")
    bad = any(f["cases_lost"] or f["server_errors_500"] for f in report["faults"])
    return 1 if bad else 0


def _upgrade(args: argparse.Namespace) -> int:
    if (args.dir / STATE).exists():
        print(f"a cluster is already up in {args.dir}: the upgrade makes its own; `down` first")
        return 1
    drill = upgrade.Drill(
        recoveries=args.recoveries,
        held=min(args.held, args.recoveries),
        claims=args.claims,
        in_review=args.claims // 2,
        hold_s=args.hold,
    )
    cluster = Cluster.plan(args.dir, upgrade.cluster_env(drill))
    log(f"starting a cluster (recovery hold {drill.hold_s} s)")
    cluster.up()
    try:
        crowd = faults.accounts(cluster, drill.people)
        report = {
            "benchmark": "cluster-upgrade",
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "config": {k: getattr(drill, k) for k in drill.__dataclass_fields__},
            **run_async(upgrade.run(cluster, crowd, drill)),
        }
    finally:
        cluster.down()
    output = save_report("cluster-upgrade", report, args.output)
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    log(f"results in {output}")
    bad = report["cases_lost"] or report["nondeterminism_errors"]
    return 1 if bad else 0


async def _measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    pace = faults.Pace(seconds=args.seconds, per_second=args.rate, claim_every=args.claim_every)

    async def partition(c: Cluster, p: faults.Pace) -> dict[str, Any]:
        return await faults.temporal_partition(c, p, seconds=args.partition)

    plan = [
        ("worker host killed", faults.worker_host_killed, pace),
        ("temporal partition", partition, _long_enough(pace, args.partition)),
        ("api host killed", faults.api_host_killed, pace),
        ("db restarted", faults.db_restarted, pace),
    ]
    crowd = await asyncio.to_thread(faults.accounts, cluster, sum(p.people for *_, p in plan))
    report: dict[str, Any] = {
        "benchmark": "cluster-faults",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": {"seconds": args.seconds, "rate": args.rate, "partition_s": args.partition},
        "faults": [],
    }
    start = 0
    for name, fault, fault_pace in plan:
        log(f"{name}: {fault_pace.seconds:g} s of load, {fault_pace.per_second:g} people/s")
        people = crowd[start : start + fault_pace.people]
        found = await faults.run(cluster, people, fault_pace, fault)
        start += fault_pace.people
        if fault is faults.worker_host_killed:
            await faults.restart_worker(cluster)
            await asyncio.to_thread(cluster.wait_ready)
        report["faults"].append({"name": name, **found})
        log(json.dumps({k: v for k, v in found.items() if k != "lost"}))
    return report


def _long_enough(pace: faults.Pace, partition: float) -> faults.Pace:
    """The load outlasts the partition by half the usual load, so cases open before, during
    and after it."""
    return faults.Pace(
        pace.after + partition + pace.seconds / 2, pace.per_second, pace.claim_every, pace.after
    )


def table(report: dict[str, Any]) -> str:
    rows = [
        "| fault | requests | failed | 500s | 503s | longest 503 spell | every case done after "
        "| case median / slowest | cases | lost | mails twice |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in report["faults"]:
        rows.append(
            f"| {f['fault']} | {f['requests']} | {f['failed']} | {f['server_errors_500']} "
            f"| {f['unavailable_503']} | {f['longest_503_spell_s']} s "
            f"| {f['all_completed_after_fault_s']} s "
            f"| {f['median_case_s']} / {f['slowest_case_s']} s | {f['cases_opened']} "
            f"| {f['cases_lost']} | {f['mails_sent_twice']} |"
        )
    return "\n".join(rows)
