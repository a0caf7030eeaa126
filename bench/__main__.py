"""`python -m bench <benchmark> [options]`: one subcommand per benchmark.

A benchmark is a module with `NAME` (the subcommand), `HELP` (one line),
`configure(parser)` (its options) and `main(args) -> int` (the exit status); list it in
`BENCHMARKS` to make it available.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from types import ModuleType

from bench import code_latency, compare, console_queue, kills, open_cases, oracle, overload
from bench.cluster import cli as cluster
from bench.stack import StackError

BENCHMARKS: tuple[ModuleType, ...] = (
    cluster,
    code_latency,
    compare,
    console_queue,
    kills,
    open_cases,
    oracle,
    overload,
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bench", description="Measurements of Reclaim on this machine."
    )
    commands = root.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for module in BENCHMARKS:
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.main)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except StackError as err:
        print(f"bench: the stack did not start: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
