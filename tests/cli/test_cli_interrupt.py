"""Ctrl-C and the global options: a real SIGINT to a running `shiftlab` ends it with one line and status 130, a
workspace that does not exist is named as such, and global options after the command work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import make_folder
from shiftlab.cli import INTERRUPTED, main

# a model whose forward pass says it has started (a file) and then takes far longer than the test waits
SLOW_MODEL = '''
import pathlib, time
import torch
from torch import nn

class Slow(nn.Module):
    def __init__(self, marker):
        super().__init__()
        self.fc = nn.Linear(3, 1000)
        self.marker = marker

    def forward(self, x):
        pathlib.Path(self.marker).touch()
        time.sleep(120)
        return self.fc(x.mean(dim=(2, 3)))

def build(marker=""):
    return Slow(marker), {"resize": 32, "crop": 32}
'''


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"shiftlab ended ({proc.returncode}) before it got there: {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def _interrupt(argv: list[str], started: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``python -m shiftlab argv``, send SIGINT once ``started`` exists, and collect how it ended."""
    proc = subprocess.Popen([sys.executable, "-m", "shiftlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(started, proc)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("shiftlab still ran 60 s after SIGINT")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("debug", [False, True])
def test_sigint_during_eval_exits_130_with_one_line(tmp_path, debug):
    folder = make_folder(tmp_path / "imgs", per_class=3)
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    started = tmp_path / "forward-started"
    env = {**os.environ, "SHIFTLAB_HOME": str(tmp_path / "ws")}
    argv = [*(["--debug"] if debug else []), "--quiet", "eval", "-d", str(folder), "-m",
            f"python:{tmp_path / 'slow.py'}:build?marker={started}"]
    p = _interrupt(argv, started, env)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in p.stderr and p.stdout == ""  # no table: the run did not finish
    # the shell's `&&` stops there: a following step never runs
    sh = subprocess.run(["sh", "-c", 'exit "$1" && echo next-step', "sh", str(p.returncode)], capture_output=True,
                        text=True)
    assert sh.stdout == ""


def test_sigint_during_world_build_exits_130(tmp_path):
    ws = tmp_path / "ws"
    env = {**os.environ, "SHIFTLAB_HOME": str(ws)}
    # build_world stages the world in a folder beside its final place: interrupt once that stage exists
    p = _interrupt(["--quiet", "world", "build"], ws, env)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in p.stderr


def test_a_workspace_that_does_not_exist_is_named(capsys, tmp_path):
    missing = tmp_path / "does" / "not" / "exist"
    for argv in (["--workspace", str(missing), "datasets"], ["datasets", "--workspace", str(missing)],
                 ["-w", str(missing), "eval", "-d", "world-test", "-m", "world:mlp"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: workspace {missing} does not exist"), err
        assert "no datasets registered" not in err
    assert not missing.exists()  # and nothing was made there
    # the commands that start a workspace still may: a first `datasets add` into a new folder
    folder = make_folder(tmp_path / "imgs", per_class=2)
    assert main(["--quiet", "--workspace", str(missing), "datasets", "add", "pets", str(folder)]) == 0
    assert (missing / "manifests" / "pets.parquet").is_file()
    capsys.readouterr()


def test_global_options_after_the_command_work(capsys, tmp_path):
    folder = make_folder(tmp_path / "imgs", per_class=2)
    ws = tmp_path / "elsewhere"
    assert main(["datasets", "add", "pets", str(folder), "--workspace", str(ws), "--quiet"]) == 0
    assert (ws / "manifests" / "pets.parquet").is_file()  # not in $SHIFTLAB_HOME
    assert not (tmp_path / "ws" / "manifests").exists()
    capsys.readouterr()
    assert main(["datasets", f"--workspace={ws}"]) == 0
    out = capsys.readouterr().out
    assert "pets" in out and str(ws) in out
    # a spelling main cannot move (a short option with its value attached) gets a hint that says where it goes
    assert main(["datasets", f"-w{ws}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a global option: give it before the command" in err


# the console script ends the process without the interpreter's teardown; what a normal exit does that matters
# must still happen: exit handlers run, buffered output is written, and a live non-daemon thread is waited for
EXIT_PROBE = '''
import atexit, sys, threading, time
from shiftlab.cli import _exit_without_teardown
atexit.register(lambda: open(sys.argv[1], "w").write("handler ran"))
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(1), open(sys.argv[1] + ".thread", "w").write("joined"))).start()
sys.stdout.write("buffered, not yet flushed")
_exit_without_teardown(3)
sys.exit(5)
'''


@pytest.mark.parametrize("mode", ["plain", "thread"])
def test_fast_exit_keeps_exit_handlers_output_and_live_threads(tmp_path, mode):
    marker = tmp_path / "marker"
    r = subprocess.run([sys.executable, "-c", EXIT_PROBE, str(marker), mode], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout == "buffered, not yet flushed" and marker.read_text() == "handler ran"
    if mode == "plain":
        assert r.returncode == 3  # the fast exit, with the status it was given
    else:  # a non-daemon thread was alive: the normal exit ran and waited for it
        assert r.returncode == 5 and (tmp_path / "marker.thread").read_text() == "joined"
