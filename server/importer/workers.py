"""The parse workers' process pool: a worker dies with its server, and a dead one is noticed."""
from __future__ import annotations

import multiprocessing.connection
import os
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor


def exit_with_parent(parent_pid: int) -> None:
    """Worker-process initializer: a parse worker never outlives the server that started it.

    A server killed with SIGKILL cannot shut its pool down, and the worker,
    blocked on its task queue, would otherwise wait for work forever.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def notice_dead_workers(processes: Executor | None) -> None:
    """Make a process pool whose worker died see that it is broken, even one killed mid-reply.

    CPython's ProcessPoolExecutor (as of 3.11) reads a result as soon as its pipe turns
    readable. A worker killed while writing one (kill -9 halfway through sending a parsed
    batch back, which takes a while on a loaded machine) leaves half a message there, and the
    pool's manager thread waits in recv() for the rest for ever: it never looks at the dead
    worker's sentinel, so the pool's futures never resolve, and interpreter exit hangs joining
    that thread. Nor does an end of file come, because this process, which made the pipe,
    holds its write end too. Closing that end once a worker is dead gives the reader its end
    of file: the manager marks the pool broken and fails its futures with BrokenProcessPool,
    as it does for any other death.

    Only a dead worker's pool is touched, and a pool with a dead worker is broken for good:
    its other workers (the pipelines' parse workers) are ended too, since each holds the
    pipe's write end as well, and the end of file comes only when no process does.
    """
    if not isinstance(processes, ProcessPoolExecutor):
        return
    workers = list((getattr(processes, "_processes", None) or {}).values())
    if not workers or not multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0):
        return
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join(1)
    results = getattr(processes, "_result_queue", None)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        writer.close()
