"""The console command: --help and --version, as a user types them."""

import subprocess
import sys
from pathlib import Path

import odm

ODM = str(Path(sys.executable).parent / "odm")  # the console script installed next to python

def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_version_from_console_script_and_module() -> None:
    for cmd in ([ODM], [sys.executable, "-m", "odm"]):
        result = run(*cmd, "--version")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"odm {odm.__version__}"


def test_help_lists_commands() -> None:
    result = run(sys.executable, "-m", "odm", "--help")
    assert result.returncode == 0
    assert "server" in result.stdout


def test_no_command_prints_help_and_fails() -> None:
    result = run(ODM)
    assert result.returncode == 2
    assert "usage: odm" in result.stdout


def test_server_help_names_its_options() -> None:
    result = run(ODM, "server", "--help")
    assert result.returncode == 0
    assert "--port" in result.stdout and "--dbpath" in result.stdout
