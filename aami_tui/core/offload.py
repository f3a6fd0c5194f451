"""CPU-bound work in another Python process, so that the console's own interpreter stays free.

pglast's parse of a 10,000-statement file (and the lint built on it) holds the interpreter lock for seconds: in a
thread it still froze the console (issue 8). ``call(fn, *args)`` runs a module-level function in a fresh
``python -m aami_tui.core.offload`` and returns its result, or raises its exception. Cancelling the awaiting task
(or its timeout) kills the process. Arguments and results travel as pickles between this package's own processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class OffloadError(RuntimeError):
    """The helper process could not run the function (it died, or answered with nothing readable)."""


async def call(fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
    payload = pickle.dumps((fn.__module__, fn.__qualname__, args), protocol=pickle.HIGHEST_PROTOCOL)
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent.parent)  # the folder holding aami_tui/ (a checkout too)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aami_tui.core.offload", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(payload), timeout)
    except BaseException:  # cancelled or timed out: the work goes with it
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    try:
        ok, value = pickle.loads(out)
    except Exception:
        detail = err.decode(errors="replace").strip().splitlines()
        raise OffloadError(f"the helper process for {fn.__qualname__} ended without an answer (exit status "
                           f"{proc.returncode}{': ' + detail[-1] if detail else ''})") from None
    if ok:
        return value
    raise value


def _main() -> None:
    import importlib

    module, qualname, args = pickle.loads(sys.stdin.buffer.read())
    try:
        fn: Any = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        answer = (True, fn(*args))
    except Exception as exc:  # noqa: BLE001 - handed back to the caller, who raises it
        try:
            pickle.dumps(exc)
            answer = (False, exc)
        except Exception:  # noqa: BLE001
            answer = (False, OffloadError(f"{type(exc).__name__}: {exc}"))
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _main()
