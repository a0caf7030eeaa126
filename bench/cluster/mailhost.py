"""The cluster's `mail` host: an SMTP server that accepts every message and keeps each one as a
file (`<dir>/<sequence>-<pid>.eml`, written under another name and renamed, so a reader never
sees half a mail). The load reads that folder as the people's inboxes.

`python -m bench.cluster.mailhost --host ADDRESS --port 25 --dir FOLDER`; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Keeper:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{next(self.numbers):08d}-{os.getpid()}"
        partial = self.folder / f".{name}.tmp"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.folder / f"{name}.eml")
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(Keeper(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print(f"mail host: SMTP on {args.host}:{args.port}, mails in {args.dir}", flush=True)

    async def wait() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
