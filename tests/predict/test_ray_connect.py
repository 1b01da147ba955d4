"""``--executor ray`` without a cluster to join: one line naming the address, exit 2, never a hang; without Ray
installed: one line with the install command."""

from __future__ import annotations

import socket
import sys

import pytest

from shiftlab.cli import main
from shiftlab.errors import InputError, MissingDependencyError
from shiftlab.predict.executors import make_executor


def _closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening, then released
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _eval(capsys, *extra: str) -> tuple[int, str]:
    code = main(["--quiet", "eval", "--dataset", "nowhere", "--models", "world:mlp", "--executor", "ray", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("form", ["{}", "ray://{}"])
def test_unreachable_cluster_is_one_line_naming_the_address(capsys, form):
    pytest.importorskip("ray", reason="Ray is not installed: the address is only tried with Ray at hand")
    address = form.format(f"127.0.0.1:{_closed_port()}")
    code, err = _eval(capsys, "--ray-address", address)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "cannot reach the Ray cluster" in lines[0]


def test_the_address_comes_from_the_environment_too(capsys, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed: the address is only tried with Ray at hand")
    address = f"127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("SHIFTLAB_RAY_ADDRESS", address)
    code, err = _eval(capsys)
    assert code == 2 and address in err and len(err.strip().splitlines()) == 1


def test_a_silent_host_times_out_and_a_malformed_address_is_refused():
    pytest.importorskip("ray", reason="Ray is not installed: the address is only tried with Ray at hand")
    # 192.0.2.0/24 is reserved for documentation: nothing answers there (or the network says so at once)
    with pytest.raises(InputError, match=r"192\.0\.2\.1:6379"):
        make_executor("ray", "192.0.2.1:6379", connect_timeout=0.5)
    with pytest.raises(InputError, match="give auto, local, HOST:PORT or ray://HOST:PORT"):
        make_executor("ray", "headnode")


def test_without_ray_installed_the_error_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to the import system
    with pytest.raises(MissingDependencyError, match=r"pip install 'shiftlab\[ray\]'"):
        make_executor("ray")
    code, err = _eval(capsys)
    assert code == 2 and "pip install 'shiftlab[ray]'" in err and len(err.strip().splitlines()) == 1


def test_an_unknown_executor_is_refused(capsys):
    code = main(["--quiet", "eval", "--dataset", "nowhere", "--models", "world:mlp", "--executor", "dask"])
    assert code == 2 and "unknown executor 'dask'; use local or ray" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["mistakes", "--model", "world:mlp", "--dataset", "nowhere"],
                                     ["label-issues", "--models", "world:mlp", "--dataset", "nowhere"]])
def test_the_other_commands_that_store_predictions_or_features_take_the_executor(capsys, command):
    """mistakes (features of --feature-model) and label-issues: the same options, the same one-line errors."""
    code = main(["--quiet", *command, "--executor", "dask"])
    assert code == 2 and "unknown executor 'dask'; use local or ray" in capsys.readouterr().err
    pytest.importorskip("ray", reason="Ray is not installed: the address is only tried with Ray at hand")
    address = f"ray://127.0.0.1:{_closed_port()}"
    code = main(["--quiet", *command, "--executor", "ray", "--ray-address", address])
    err = capsys.readouterr().err
    assert code == 2 and address in err and len(err.strip().splitlines()) == 1
