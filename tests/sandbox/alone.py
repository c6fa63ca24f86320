"""Run jobs through the policy alone: `runtime.execute` in a fresh interpreter with no jail.

No Landlock, seccomp, rlimits or identity change here, on purpose: an escape that gets
past the policy really reaches this process's modules, files and network. Started by the
`run_alone` fixture as `python -I alone.py`; reads a JSON list of jobs on stdin and
writes a JSON list of `{"done", "output", "calls"}` on stdout. Every integration call is
answered `unknown_integration`, as the executor's default handler does.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sandbox import protocol, runtime  # after the path is set

_REFUSAL = {"code": "unknown_integration", "message": "no integrations in this harness"}


def _host(sock: socket.socket, seen: dict[str, Any]) -> None:
    reader = protocol.FrameReader(sock, max_frame=64 * 1024 * 1024)
    while True:
        try:
            message = reader.read(timeout=60)
        except (TimeoutError, protocol.ProtocolError):
            return
        if message is None:
            return
        if message["t"] == "out":
            seen["output"] += message["data"]
        elif message["t"] == "call":
            seen["calls"].append(message["args"])
            protocol.send(sock, {"t": "reply", "ok": False, "error": _REFUSAL})


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Execute one job on a fresh socket pair; return its done message, output and calls."""
    worker_end, host_end = socket.socketpair()
    seen: dict[str, Any] = {"output": "", "calls": []}
    host = threading.Thread(target=_host, args=(host_end, seen), daemon=True)
    host.start()
    done = runtime.execute(job, worker_end)
    worker_end.close()  # the host thread reads to the end of the stream, then stops
    host.join()
    host_end.close()
    return {"done": done, **seen}


def main() -> None:
    jobs = json.load(sys.stdin)
    json.dump([run_job(job) for job in jobs], sys.stdout)


if __name__ == "__main__":
    main()
