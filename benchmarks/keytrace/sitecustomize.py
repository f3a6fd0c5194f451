"""A sampling tracer for the console under `bench.py keys` (see README.md). Loaded by Python at start-up when this
directory is on PYTHONPATH; does nothing unless AAMI_TRACE_DIR is set and the process runs aami_tui.

Records, every 4 ms, the stacks of the main thread and the run report's thread; every garbage collection (start,
generation, seconds, thread); every run report write and marker write (start, seconds). Appends them as JSON lines
to AAMI_TRACE_DIR/trace-PID.jsonl every 5 s. It costs the console a few per cent: compare its figures with each
other, not with an untraced run."""

import os
import sys

_OUT = os.environ.get("AAMI_TRACE_DIR")
if _OUT and "aami_tui" in " ".join(getattr(sys, "orig_argv", sys.argv)):
    import gc
    import json
    import threading
    import time

    _events: list = []
    _samples: list = []
    _main = threading.main_thread().ident

    def _gc(phase, info, _start={}):  # noqa: B006
        if phase == "start":
            _start["t"] = time.time()
        else:
            t0 = _start.get("t", time.time())
            _events.append((t0, "gc", info["generation"], time.time() - t0, threading.current_thread().name))

    gc.callbacks.append(_gc)

    def _stack(f) -> list[str]:
        out = []
        while f is not None and len(out) < 12:
            out.append(f"{os.path.basename(f.f_code.co_filename)}:{f.f_code.co_name}")
            f = f.f_back
        return out

    def _sampler():
        while True:
            time.sleep(0.004)
            now = time.time()
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, f in sys._current_frames().items():
                if ident == _main:
                    _samples.append((now, _stack(f)))
                elif names.get(ident, "").startswith("aami-report"):
                    _samples.append((now, ["R", *_stack(f)]))

    def _dumper():
        while True:
            time.sleep(5)
            with open(os.path.join(_OUT, f"trace-{os.getpid()}.jsonl"), "a") as fh:
                while _events:
                    fh.write(json.dumps(["ev", *_events.pop(0)]) + "\n")
                while _samples:
                    fh.write(json.dumps(["s", *_samples.pop(0)]) + "\n")

    threading.Thread(target=_sampler, daemon=True).start()
    threading.Thread(target=_dumper, daemon=True).start()

    from aami_tui.core import report as _report

    def _timed(kind, fn):
        def wrapper(*a, **k):
            t = time.time()
            try:
                return fn(*a, **k)
            finally:
                _events.append((t, kind, time.time() - t, threading.current_thread().name))
        return wrapper

    _report.write = _timed("write", _report.write)
    _report.mark_open = _timed("mark", _report.mark_open)
