"""The command line lists its sub-commands and turns config errors into one clear line."""
import subprocess
import sys

from fer_utils.cli import main

COMMANDS = ("world", "preprocess", "calibrate", "train", "train-gan", "generate", "sweep", "bench", "simulate-coverage")


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
