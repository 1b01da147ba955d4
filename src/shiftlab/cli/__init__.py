"""The ``shiftlab`` command: one Typer app; every sub-command is a thin wrapper over a library function.

One module per study or concern registers its commands (``register(app)``): ``datasets`` and ``models`` (the
workspace's names), ``evaluate`` (eval), ``world`` (world, zoo, demo), ``imagenetv2`` (candidates, hits,
dedup, sample), ``robustness``, ``mistakes`` (mistakes, confusions, label-issues) and ``review``.
Errors the user can fix are one line on stderr and exit status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from shiftlab.cli import datasets, evaluate, imagenetv2, mistakes, models, review, robustness, world
from shiftlab.cli.common import out, state
from shiftlab.errors import ShiftlabError
from shiftlab.progress import set_quiet

try:  # recent typer releases vendor click; older ones use the click package
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build, audit and evaluate test sets for image classifiers.")


@app.callback()
def _global(
    workspace: Path | None = typer.Option(None, "--workspace", "-w", envvar="SHIFTLAB_HOME",
                                             help="Workspace folder [default: ./shiftlab-workspace]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
):
    state.update(workspace=workspace, debug=debug)
    set_quiet(quiet)


for _module in (evaluate, datasets, models, world, imagenetv2, robustness, review, mistakes):
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    cmd = typer.main.get_command(app)
    try:
        cmd.main(args=argv, prog_name="shiftlab", standalone_mode=False)
    except _cx.NoArgsIsHelpError:
        return 0
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
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
    except KeyboardInterrupt:
        print("interrupted; finished chunks are kept and the next run resumes", file=sys.stderr)
        return 130
    return 0


def _sub(e: _cx.UsageError) -> str:
    ctx = getattr(e, "ctx", None)
    if ctx is None or ctx.parent is None:
        return ""
    return " ".join(ctx.command_path.split()[1:]) + " "


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


__all__ = ["app", "main", "out", "run"]
