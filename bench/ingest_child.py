"""The child side of ingest.py's measurements in a fresh process (``python
bench/ingest_child.py '<json>'``, see :func:`measure.call_child`).

``put_loaded``: one ``haathi`` command run through its entry point after the modules it uses
are imported, as a preloaded process would run it: the command's own time, without the
interpreter's start-up and imports (the store is opened inside the timed part).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from measure import child_main


def child_put_loaded(store: str, argv: list[str]) -> dict[str, Any]:
    os.environ["HAATHI_ADDRESS"] = store
    import haathi.api
    import haathi.cli.pfs_commands
    import haathi.client.dirput
    import haathi.runtime  # noqa: F401
    from haathi.cli.main import run

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        run(argv)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"haathi {' '.join(argv)} exited with {exc.code}") from exc
    return {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


OPS = {"put_loaded": child_put_loaded}

if __name__ == "__main__":
    sys.exit(child_main(OPS))
