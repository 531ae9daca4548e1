"""The command line lists its sub-commands and turns config errors into one clear line."""
import subprocess
import sys

from fer_utils.cli import main

COMMANDS = ("world", "check", "clean-cache", "preprocess", "calibrate", "train", "train-gan", "generate", "sweep",
            "bench", "simulate-coverage")


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "fer_utils", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in out


def test_config_error_exits_2_with_the_key(capsys):
    assert main(["preprocess", "--preset", "quick", "--set", "train.nope=1"]) == 2
    assert "train.nope" in capsys.readouterr().err


def test_simulate_coverage_refuses_too_few_experiments_in_one_line(capsys):
    assert main(["simulate-coverage", "--preset", "quick", "--experiments", "3"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --experiments 3: need at least 10 simulated experiments per "
                                               "cell")


def test_a_failed_write_anywhere_is_one_line_and_exit_2(monkeypatch, capsys):
    """A write that fails outside the atomic writers (the world's files, a lock) is one line naming the file and
    the cause, without a traceback (issue 37 #5/#6); an OSError that is not a failed write still propagates."""
    import errno
    import os

    import pytest

    from fer_utils import cli

    def fails(code):
        def command(cfg, args):
            raise OSError(code, os.strerror(code), "/data/quick/world/rafd/x.png")
        return command

    monkeypatch.setattr(cli, "_cmd_world", fails(errno.EROFS))
    assert main(["world", "--preset", "quick"]) == 2
    err = capsys.readouterr().err
    assert err == "error: cannot write /data/quick/world/rafd/x.png: Read-only file system; write elsewhere\n"
    monkeypatch.setattr(cli, "_cmd_world", fails(errno.ENOENT))
    with pytest.raises(FileNotFoundError):
        main(["world", "--preset", "quick"])
