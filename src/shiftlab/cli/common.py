"""What every command module shares: the console, the global options' state, tables and small parsers."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shiftlab.errors import InputError

# piped or logged output gets wide lines instead of rich's default 80 columns
out = Console(width=None if sys.stdout.isatty() else 200)
#: set by the global callback: --workspace and --debug
state: dict = {"workspace": None, "debug": False}


def ws():
    """The workspace of this invocation (``--workspace``, ``SHIFTLAB_HOME`` or ./shiftlab-workspace)."""
    from shiftlab.workspace import Workspace

    return Workspace.resolve(state["workspace"])


def table(title: str, columns: list[str], right: tuple[str, ...] = ()) -> Table:
    """A table whose cells wrap rather than being cut with '…' (output is often piped or logged)."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    return t


def pct(x: float) -> str:
    """A fraction as percent with two decimals; NaN as an em dash."""
    return "—" if x != x else f"{100 * x:.2f}"


def split_specs(models: str) -> list[str]:
    """``--models a,b,c`` → the specs; none at all is a one-line error."""
    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise InputError("--models is empty; give one or more model specs, comma-separated")
    return specs


def split_names(names: str) -> list[str]:
    """A comma-separated list of names, blanks dropped."""
    return [n.strip() for n in names.split(",") if n.strip()]


def vocabulary(name: str | None):
    """``--vocabulary``: imagenet-1k, digits or a JSON list of names (None: detect)."""
    from shiftlab.data.classes import load_vocabulary

    return load_vocabulary(name) if name else None


def layout_for_path(path: Path) -> str | None:
    from shiftlab.data.layouts import detect_layout

    return detect_layout(path) if path.exists() else None


def task_done(task: dict, n: int, what: str) -> None:
    """Cache a new review task's thumbnails and say how to open it."""
    from shiftlab.review.images import warm_thumbnails

    # thumbnails now, so the first page view reads small cached files instead of decoding
    shown, wanted = warm_thumbnails(task, ws())
    skipped = wanted - shown
    out.print(f"review task {task['name']!r} ({task['kind']}): {n} {what}"
              + (f"; {skipped} image(s) could not be decoded and show as gaps" if skipped else "")
              + "; open it with 'shiftlab review serve'")


def pick(new, old, name: str, old_name: str):
    """The value of an option that has an old, hidden spelling: the new one, else the old one; both is an error."""
    if new is not None and old is not None:
        raise InputError(f"give {name} or its old spelling {old_name}, not both")
    return new if new is not None else old


def check_out_folder(folder: Path, option: str) -> Path:
    """An output folder, checked before any work: it is a folder or can be made one (nothing on its way is a
    file). ``InputError`` otherwise, naming ``option``."""
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise InputError(f"{option} {folder}: {p} is a file, not a folder")
            break
    return folder


def check_out_file(path: Path, option: str, *twins: Path) -> Path:
    """An output file (and the ``twins`` written beside it), checked before any work: none of them is a folder,
    and its folder exists or can be made. ``InputError`` otherwise, naming ``option``."""
    path = Path(path)
    for p in (path, *twins):
        if p.is_dir():
            what = "" if p == path else f" (written beside it: {p.name})"
            raise InputError(f"{option} {path}: {p} is a folder{what}; give a file path")
    check_out_folder(path.parent, option)
    return path


def executor_option():
    """``--executor local|ray``: where a command's predictions (and near-duplicate kNN chunks) are computed."""
    return typer.Option("local", "--executor", help="Where predictions and kNN chunks are computed: local (this "
                                                    "machine) or ray (a Ray cluster; pip install 'shiftlab[ray]').")


def ray_address_option():
    """``--ray-address`` (or ``$SHIFTLAB_RAY_ADDRESS``): the Ray cluster of ``--executor ray``."""
    return typer.Option(None, "--ray-address", envvar="SHIFTLAB_RAY_ADDRESS", help="With --executor ray: auto (the "
                        "cluster this machine belongs to), HOST:PORT of its head, ray://HOST:PORT (Ray Client) or "
                        "local (start one here) [default: auto].")


@contextmanager
def executor_scope(executor: str, ray_address: str | None):
    """Run the block's predictions and kNN on ``executor`` (connected first, so a missing cluster fails before
    any work), and leave the cluster afterwards."""
    from shiftlab.predict.executors import make_executor, use_executor

    ex = make_executor(executor, ray_address)
    try:
        with use_executor(ex):
            yield ex
    finally:
        ex.close()
