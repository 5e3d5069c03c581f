"""`python -m hybridlabel.flows.server_guard PARENT_PID MODULE ARGS...`: run MODULE (Prefect's uvicorn
server) as `python -m MODULE ARGS...`, and stop it when PARENT_PID is gone.

Prefect starts its temporary local server as a child process and stops it when the
pipeline exits normally; a pipeline killed with SIGKILL cannot, and the server lived on
as an orphan for minutes. The guard notices the parent's death (the child is re-parented)
within a second and asks the server to shut down as Ctrl-C would."""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown
    time.sleep(10)
    os._exit(1)


def main() -> None:
    parent, module, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
