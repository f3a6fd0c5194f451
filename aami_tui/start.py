"""The entry point (``aami-tui``, ``python -m aami_tui``): the console's own start, and every other command.

The console's start is a race to its first frame with live data (README, Performance). This module is what the
process loads before that frame besides Textual and the dashboard: no argparse, no command line of eight commands.
The command line is parsed by the early child (core/early.py), forked first thing, on the other core, while this
process imports Textual; it sends the parsed arguments back with the settings and the first data. Whatever that
path cannot do as the command line would (help, a bad argument or setting, no terminal, the embedded server, a
child that failed) goes to ``cli.main`` unchanged: the same words, the same exit codes.
"""

from __future__ import annotations

import sys

COMMANDS = ("check", "console", "demo", "apply", "init", "lint", "plan", "rehearse", "restore", "screenshots")
EXIT_USAGE = 64  # cli.EXIT_USAGE (BSD sysexits EX_USAGE)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _console_for_sure(argv):
        return _console(argv if argv and argv[0] == "console" else ["console", *argv])
    return _cli(argv)


def _cli(argv: list[str]) -> int:
    from aami_tui.cli import main as cli_main

    return cli_main(argv)


def _console_for_sure(argv: list[str]) -> bool:
    """The arguments open the console (as cli.main reads them) and ask for no help or version: the fast start.
    Only a shortcut: anything else the child cannot parse still goes to cli.main."""
    if argv and argv[0] in COMMANDS and argv[0] != "console":
        return False
    return not any(a in ("-h", "--help", "--version") or a.startswith(("--he", "--vers")) for a in argv)


def need_terminal() -> str | None:
    """The console draws on the terminal and reads keys from it. Without one (CI, a pipe, cron) it would
    run until killed, writing escape codes: say so at once instead. Returns the sentence, or None.

    stdin alone redirected (``aami-tui </dev/null`` in a terminal) is fine: keys are read from /dev/tty."""
    import os

    hint = "for scripts and CI use `aami-tui check`, `aami-tui apply` or `aami-tui init`"
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        try:
            tty = stream is not None and stream.isatty()
        except (ValueError, OSError):
            tty = False
        if not tty:
            return f"the console needs a terminal and {name} is not one; {hint}."
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            return None
    except (ValueError, OSError):
        pass
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return f"the console reads keys from a terminal and stdin is not one (nor is there a /dev/tty); {hint}."
    os.dup2(fd, 0)  # keys come from the terminal even when stdin was redirected
    os.close(fd)
    return None


def _console(argv: list[str]) -> int:
    """``argv`` starts with "console". The child parses it (and resolves the settings, connects, reads the
    checklist) while this process imports Textual and the dashboard; then the console runs as ``console``
    runs it. No terminal: cli.main says so after its own argument checks, as always."""
    if need_terminal() is not None:
        return _cli(argv)
    from aami_tui.core import early as early_child

    early = early_child.start(argv=argv)
    if early is None:
        return _cli(argv)
    import gc

    gc.disable()  # as in console(), from before Textual's import
    try:
        import aami_tui.ui.app  # noqa: F401 - Textual and the dashboard, while the child parses and connects

        got = early.wait("args", timeout=5.0)
    except KeyboardInterrupt:
        early.close()
        gc.enable()
        _say_error("interrupted")
        return 130
    if got is None:  # help, a bad argument (said by the command line, as always) or a child that failed
        early.close()
        gc.enable()
        return _cli(argv)
    from types import SimpleNamespace

    args = SimpleNamespace(**got[1])
    if args.embedded:  # a throwaway server: the console starts it itself
        early.close()
        early = None
    try:
        return console(args, early)
    finally:
        from aami_tui.cli import _flush_quietly

        _flush_quietly()


def console(args, early) -> int:
    """The console, with its early child (core/early.py) already started, or None. A child forked before Textual
    is imported resolves the settings, connects and reads the checklist while this process imports and paints:
    the first frame shows live data sooner. Without it (it failed, or said nothing) everything goes as it always
    did."""
    import gc

    # No cyclic collection until the first frame is on screen (the app then freezes what was made and turns it
    # back on, app.settle_heap): a full collection over Textual's freshly imported heap held the first frame
    # ~10 ms (35 ms under load); startup makes next to no cyclic garbage.
    gc.disable()
    try:
        from aami_tui.ui.app import run_console

        if early is not None:
            got = early.wait("settings", timeout=5.0)
            if got is not None:
                import dataclasses

                settings = dataclasses.replace(got[1], known_effective=got[2])
                return run_console(settings, args, early=early)
            early.close()  # a bad setting (said just below, by this process) or a child that failed
            early = None
        from aami_tui.cli import _with_embedded

        return _with_embedded(args, lambda s, pg: run_console(s, args, embedded=pg))
    except KeyboardInterrupt:
        _say_error("interrupted")
        return 130
    finally:
        gc.enable()
        if early is not None:
            early.close()


def _say_error(msg: str) -> None:
    from aami_tui.cli import _err

    _err(msg)
