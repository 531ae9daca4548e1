"""The command line lists its sub-commands and turns config errors into one clear line."""
import subprocess
import sys

from fer_utils.cli import main

COMMANDS = ("world", "preprocess", "calibrate", "train", "train-gan", "generate", "sweep", "bench")


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "fer_utils", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in out


def test_config_error_exits_2_with_the_key(capsys):
    assert main(["preprocess", "--preset", "quick", "--set", "train.nope=1"]) == 2
    assert "train.nope" in capsys.readouterr().err
