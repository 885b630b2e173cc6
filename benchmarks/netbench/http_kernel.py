"""The kernel's HTTP server for the connection-rate rows: synack's own HTTP handler
(:class:`synack.services.http.HttpService` under a :class:`ServiceRunner`, the code
``synack serve http`` runs) on kernel sockets through ``asyncio.start_server``::

    http_kernel.py --port 8080        # READY {json}; RESULT {json} on SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from synack.services.http import HttpService
from synack.services.runner import ServiceRunner


def emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(f"{kind} {json.dumps(fields)}\n")
    sys.stdout.flush()


async def serve(port: int) -> None:
    runner = ServiceRunner("http", HttpService(), grace=1.0)
    server = await asyncio.start_server(runner, "0.0.0.0", port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    emit("READY", port=port)
    await stop.wait()
    server.close()
    t = runner.totals()
    emit("RESULT", connections=t["connections"], requests=t["requests"], errors=t["errors"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    asyncio.run(serve(a.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
