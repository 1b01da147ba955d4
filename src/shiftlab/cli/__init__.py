"""The ``shiftlab`` command: one Typer app; every sub-command is a thin wrapper over a library function.

One module per study or concern registers its commands (``register(app)``): ``datasets`` and ``models`` (the
workspace's names), ``evaluate`` (eval), ``world`` (world, zoo, demo), ``imagenetv2`` (candidates, hits,
dedup, sample), ``robustness``, ``mistakes`` (mistakes, confusions, label-issues) and ``review``.
Errors the user can fix are one line on stderr and exit status 2 (``--debug`` shows the traceback); Ctrl-C is
one line and exit status 130, so that ``shiftlab eval && next-step`` stops there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from shiftlab.cli import (
    datasets,
    easyset,
    evaluate,
    imagenetv2,
    mistakes,
    models,
    review,
    robust,
    robustness,
    spurious,
    spurious_components,
    world,
)
from shiftlab.cli.common import out, state
from shiftlab.errors import InputError, ShiftlabError
from shiftlab.progress import set_quiet

try:  # recent typer releases vendor click; older ones use the click package
    from typer._click import exceptions as _cx
    from typer._click.core import ParameterSource
except ImportError:  # pragma: no cover
    from click import exceptions as _cx
    from click.core import ParameterSource

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build, audit and evaluate test sets for image classifiers.")


INTERRUPTED = "interrupted; finished chunks are kept and the next run resumes"
#: the global options, which belong before the command; main() moves them there when they come after it
_GLOBAL_VALUE_OPTIONS = ("--workspace", "-w")
_GLOBAL_FLAGS = ("--quiet", "-q", "--debug")
#: the commands that make a workspace when the one named does not exist yet; every other command reads one, and
#: an explicit --workspace that is not there is a typo far more often than a wish for an empty workspace
_CREATE_WORKSPACE = {"world", "demo", "datasets add", "candidates"}


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Path | None = typer.Option(None, "--workspace", "-w", envvar="SHIFTLAB_HOME",
                                             help="Workspace folder [default: ./shiftlab-workspace]. Give it "
                                                  "before the command."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    state.update(workspace=workspace, debug=debug)
    set_quiet(quiet)
    if workspace is not None and ctx.get_parameter_source("workspace") is ParameterSource.COMMANDLINE \
            and not workspace.expanduser().exists() and not _creates_workspace(ctx):
        raise InputError(f"workspace {workspace} does not exist; check the path, or make one there with "
                         f"'shiftlab --workspace {workspace} demo' (or world build, datasets add, candidates import)")


def _creates_workspace(ctx: typer.Context) -> bool:
    """Whether the command being invoked may start a new workspace (``_CREATE_WORKSPACE``)."""
    sub = ctx.invoked_subcommand
    if sub in _CREATE_WORKSPACE:
        return True
    # a group's own sub-command (datasets add NAME PATH → add) is parsed after this callback runs: it is the word
    # after the group's in the command line that main() passes down
    argv = (ctx.obj or {}).get("argv", [])
    after = argv[argv.index(sub) + 1:] if sub in argv else []
    words = [a for a in after if not a.startswith("-")]
    return bool(words) and f"{sub} {words[0]}" in _CREATE_WORKSPACE


for _module in (evaluate, datasets, models, world, imagenetv2, robustness, review, mistakes, spurious,
                spurious_components, robust, easyset):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    0 on success, 2 for input the user can fix (one line on stderr), 130 after Ctrl-C (SIGINT).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    repeated = _repeated_model_option(argv)
    if repeated:
        print(f"error: {repeated}", file=sys.stderr)
        return 2
    try:
        cmd = typer.main.get_command(app)
        # typer turns a KeyboardInterrupt into Exit(130), which standalone_mode=False returns instead of raising;
        # what a command returns is None, so an int here is an exit status
        code = cmd.main(args=argv, prog_name="shiftlab", standalone_mode=False, obj={"argv": argv})
    except _cx.NoArgsIsHelpError:
        return 0
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except _cx.NoSuchOption as e:
        is_global = e.option_name in _GLOBAL_VALUE_OPTIONS + _GLOBAL_FLAGS
        moved = _globals_first(argv) if is_global else argv
        if moved != argv:  # a global option after the command: run it as if it came first
            return main(moved)
        hint = (f"{e.option_name} is a global option: give it before the command, e.g. 'shiftlab --workspace DIR "
                f"{_sub(e)}…'") if is_global else f"see 'shiftlab {_sub(e)}--help'"
        print(f"error: {e.format_message()} ({hint})", file=sys.stderr)
        return 2
    except _cx.UsageError as e:
        print(f"error: {e.format_message()} (see 'shiftlab {_sub(e)}--help')", file=sys.stderr)
        return 2
    except _cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return 2
    except ShiftlabError as e:
        if state["debug"]:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # raised outside the command (while parsing or importing): typer never saw it
        code = 130
    if code == 130:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0


_MODEL_OPTIONS = ("-m", "--models", "--model")  #: every command's model option, in all its spellings


def _repeated_model_option(argv: list[str]) -> str | None:
    """The message for a model option given more than once, else None.

    Why: ``-m`` takes one comma-separated list, and a second ``-m`` would silently replace the first (click keeps
    the last value of an option that is not ``multiple``), so ``eval -m a -m b`` would evaluate b alone.
    """
    given = []
    for a in argv:
        if a == "--":
            break
        # the spelling the user typed: "--models=x" → "--models", "-mx" (a short option glued to its value) → "-m"
        spelling = a.split("=", 1)[0] if a.startswith("--") else a[:2]
        if spelling in _MODEL_OPTIONS:
            given.append(spelling)
    if len(given) < 2:
        return None
    return (f"{given[0]} given {len(given)} times, and only the last would count: list several models once, "
            "comma-separated (e.g. -m world:mlp,world:cnn-small)")


def _globals_first(argv: list[str]) -> list[str]:
    """``argv`` with the global options (and --workspace's value) that follow the command moved before it."""
    front, rest, i, seen_command = [], [], 0, False
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i:])
            break
        name = a.split("=", 1)[0]
        if name in _GLOBAL_VALUE_OPTIONS:
            take = 1 if "=" in a else 2
            (front if seen_command else rest).extend(argv[i:i + take])
            i += take
            continue
        if a in _GLOBAL_FLAGS:
            (front if seen_command else rest).append(a)
        else:
            seen_command = seen_command or not a.startswith("-")
            rest.append(a)
        i += 1
    return front + rest


def _sub(e: _cx.UsageError) -> str:
    ctx = getattr(e, "ctx", None)
    if ctx is None or ctx.parent is None:
        return ""
    return " ".join(ctx.command_path.split()[1:]) + " "


def run() -> None:
    """Console-script entry point (and ``python -m shiftlab``)."""
    try:
        code = main()
    except KeyboardInterrupt:  # a Ctrl-C that lands after main() has handled its work: still one line and 130
        print(INTERRUPTED, file=sys.stderr)
        code = 130
    _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> None:
    """End the process now when nothing is left to wait for, skipping the interpreter's teardown.

    Why: after the work is done, tearing down torch's and matplotlib's modules takes 1.5–2 s of a 15 s demo rerun,
    and nothing in it is ours to keep. What a normal exit does that matters is kept: the exit handlers run
    (multiprocessing joins its workers, Ray shuts down, temporary folders go), and the output is flushed. Where
    another non-daemon thread is alive (a server, a writer), the normal exit waits for it instead.
    """
    import atexit
    import threading

    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # a handler or a closed pipe failed: let the normal exit report it as it would
        return
    os._exit(code)


__all__ = ["app", "main", "out", "run"]
