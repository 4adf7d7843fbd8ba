"""A step that may run for a while without saying anything (the Verilog emission of an
encoder: tens of seconds inside Amaranth and Yosys) tells the user it is still going."""
from __future__ import annotations

import contextlib
import threading
import time

#: seconds between two "still running" lines
EVERY = 10.0


@contextlib.contextmanager
def heartbeat(progress, what: str, every: float = EVERY):
    """Within the block, call ``progress("<what>: still running, <t> s")`` every
    ``every`` seconds (from a daemon thread); nothing when the block ends sooner."""
    done = threading.Event()
    start = time.perf_counter()

    def beat():
        while not done.wait(every):
            progress(f"{what}: still running, {time.perf_counter() - start:.0f} s")

    thread = threading.Thread(target=beat, daemon=True, name="attnflow-heartbeat")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
