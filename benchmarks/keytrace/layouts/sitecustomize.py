"""A second tracer for the console under `bench.py keys` (see ../README.md): times Textual's layout, repaint and
restyle calls on the main thread, the runbook's own handlers, every garbage collection, and who asked for each
layout of the screen (``LAYOUT`` lines with the asking widget and its callers), with the engine's phase changes
(``PHASE`` lines). Appends [wall time, label, seconds] as JSON lines to AAMI_TRACE_DIR/tim-PID.jsonl every 3 s.
Importing the console's modules at start-up changes its first frame: compare runs of this tracer with each other.

    PYTHONPATH=benchmarks/keytrace/layouts AAMI_TRACE_DIR=/tmp/kt AAMI_BENCH_ROUNDS=6 \
        .venv/bin/python benchmarks/bench.py keys
"""

import os
import sys

_OUT = os.environ.get("AAMI_TRACE_DIR")
_ARGV = " ".join(getattr(sys, "orig_argv", sys.argv))
if _OUT and "aami_tui" in _ARGV and "offload" not in _ARGV:
    import functools
    import gc
    import inspect
    import json
    import threading
    import time

    _ev: list = []

    def _dump() -> None:
        while True:
            time.sleep(3)
            with open(os.path.join(_OUT, f"tim-{os.getpid()}.jsonl"), "a") as fh:
                while _ev:
                    fh.write(json.dumps(_ev.pop(0)) + "\n")

    threading.Thread(target=_dump, daemon=True).start()
    _gc_start: dict = {}

    def _gc(phase, info) -> None:
        if phase == "start":
            _gc_start["t"], _gc_start["w"] = time.perf_counter(), time.time()
        else:
            _ev.append((_gc_start["w"], f"gc{info['generation']}", time.perf_counter() - _gc_start["t"]))

    gc.callbacks.append(_gc)

    def _callers(depth: int = 5) -> str:
        f, out = sys._getframe(2), []
        while f is not None and len(out) < depth:
            out.append(f"{os.path.basename(f.f_code.co_filename)}:{f.f_code.co_name}:{f.f_lineno}")
            f = f.f_back
        return " < ".join(out)

    def wrap(cls, name: str, label: str | None = None) -> None:
        """Time ``cls.name`` on the main thread (a coroutine function is left alone)."""
        fn = getattr(cls, name)
        label = label or f"{cls.__name__}.{name}"
        if inspect.iscoroutinefunction(fn):
            return

        @functools.wraps(fn)
        def timed(*a, **k):
            if threading.current_thread() is not threading.main_thread():
                return fn(*a, **k)
            t, wall = time.perf_counter(), time.time()
            try:
                return fn(*a, **k)
            finally:
                _ev.append((wall, label, time.perf_counter() - t))

        setattr(cls, name, timed)

    import textual.app as _tapp
    import textual.css.stylesheet as _css
    import textual.screen as _tscreen
    import textual.widget as _tw

    from aami_tui.core.runbook import engine as _engine
    from aami_tui.ui import app as _app
    from aami_tui.ui import runbook_screen as _rs
    from aami_tui.ui import step_list as _sl
    from aami_tui.ui import table_checklist as _tc

    for _n in ("_settled", "_show_pane", "_txbar", "action_toggle_sql", "_catch_up"):
        wrap(_rs.RunbookScreen, _n)  # (message handlers registered with @on are not reached this way)
    wrap(_tscreen.Screen, "_refresh_layout", "Screen._refresh_layout")
    wrap(_tscreen.Screen, "_on_timer_update", "Screen._on_timer_update")
    wrap(_css.Stylesheet, "update_nodes", "Stylesheet.update_nodes")
    wrap(_tapp.App, "_display", "App._display")
    wrap(_tapp.App, "refresh_bindings", "App.refresh_bindings")
    wrap(_sl.StepList, "redraw", "StepList.redraw")
    wrap(_tc.TableChecklist, "show", "Checklist.show")
    wrap(_app.AamiApp, "settle_heap")

    _move = _engine.Runbook._move

    def _moved(self, phase, *a, **k):
        _ev.append((time.time(), "PHASE " + str(getattr(phase, "name", phase)), 0.0))
        return _move(self, phase, *a, **k)

    _engine.Runbook._move = _moved
    _refresh = _tw.Widget.refresh

    def _refreshed(self, *regions, repaint=True, layout=False, recompose=False):
        if layout and threading.current_thread() is threading.main_thread():
            _ev.append((time.time(), f"LAYOUT {type(self).__name__}#{self.id} <- {_callers()}", 0.0))
        return _refresh(self, *regions, repaint=repaint, layout=layout, recompose=recompose)

    _tw.Widget.refresh = _refreshed
