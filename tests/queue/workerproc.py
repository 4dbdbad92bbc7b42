"""A queue worker in a process of its own, with the tests' fake archive: `python workerproc.py <json>`.

The JSON holds `settings` (load_settings keywords), `log` (the fake's log file), `script`, `seconds`, `workers`
and `until_empty`. SIGTERM stops it cleanly; the tests also SIGKILL it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from queuekit import FakeArchive, persons

from agent.config import load_settings
from agent.queue import FirmQueue


def main() -> None:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    settings = load_settings(None, persons=persons(), **spec["settings"])
    archive = FakeArchive(Path(spec["log"]), spec.get("script", {}), spec.get("seconds", 0.0))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    queue = FirmQueue(settings, archive)
    print("ready", flush=True)
    queue.work(spec.get("workers", 1), spec.get("until_empty", False), stop)


if __name__ == "__main__":
    main()
