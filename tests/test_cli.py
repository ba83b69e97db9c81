"""c7n_imds.cli: the `c7n-imds` command in front of custodian and c7n-org."""

import subprocess
import sys
from pathlib import Path

import pytest
from c7n.version import version as custodian_version

import c7n_imds

COMMAND = str(Path(sys.executable).with_name("c7n-imds"))


@pytest.mark.parametrize("argument", ["--version", "version"])
def test_version_names_c7n_imds_beside_custodian(argument):
    result = subprocess.run([COMMAND, argument], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        "c7n-imds %s (custodian %s, c7n-org " % (c7n_imds.__version__, custodian_version)
    ), first
