"""The built wheel, as a user gets it: installed (non-editable, with the demo extra) into
a fresh virtualenv and run from an empty directory, where no checkout is in sight.

Building copies the sources the wheel is made from into a scratch folder first, so the
build sees only what the package declares (no .venv, no test files) and leaves nothing
in the checkout. Dependencies come from the package registry, pinned by constraints.txt,
as the README tells users to install.
"""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from c7n_imds.testing import aws_env
from tests.conftest import REPO

E2E = True
SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
           "CHANGELOG.md", "constraints.txt", "c7n_imds", "policies")
PACK_FILES = sorted(p.relative_to(REPO / "policies").as_posix()
                    for p in (REPO / "policies").rglob("*.yml"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, bin folder of the fresh virtualenv, its site-packages)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copyfile
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__")} if (
            REPO / name).is_dir() else {}
        copy(REPO / name, source / name, **kwargs)
    dist = root / "dist"
    pip(sys.executable, "wheel", "--no-deps", "-w", str(dist), str(source))
    (wheel,) = dist.glob("c7n_imds-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(str(venv / "bin" / "python"), "install", "-c", str(REPO / "constraints.txt"),
        "%s[demo]" % wheel)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return wheel, venv / "bin", site


def pip(python, *args):
    result = subprocess.run([python, "-m", "pip", "--quiet", "--disable-pip-version-check"]
                            + list(args), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def command(installed, args, cwd, env=None):
    _, bin_dir, _ = installed
    return subprocess.run([str(bin_dir / "c7n-imds")] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_wheel_carries_the_pack_byte_for_byte(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        packed = {n[len("c7n_imds/pack/"):]: archive.read(n) for n in archive.namelist()
                  if n.startswith("c7n_imds/pack/")}
        names = archive.namelist()
    assert sorted(packed) == PACK_FILES
    for name, content in packed.items():
        assert content == (REPO / "policies" / name).read_bytes(), name
    assert "c7n_imds/templates/imds.html.j2" in names
    assert not [n for n in names if n.startswith("tests/")]


def test_pack_commands_in_an_empty_directory(installed, tmp_path):
    _, _, site = installed
    cwd = tmp_path / "empty"
    cwd.mkdir()
    path = command(installed, ["pack", "path"], cwd)
    assert path.returncode == 0, path.stderr
    assert Path(path.stdout.strip()) == site / "c7n_imds" / "pack"

    listing = command(installed, ["pack", "list"], cwd)
    assert listing.returncode == 0, listing.stderr
    listed = [line.split()[0] for line in listing.stdout.splitlines()]
    assert listed == PACK_FILES
    assert "The recommended fix for AutoScaling.3 and EC2.170" in listing.stdout

    copied = command(installed, ["pack", "copy", "policies"], cwd)
    assert copied.returncode == 0, copied.stderr
    for name in PACK_FILES:
        assert (cwd / "policies" / name).read_bytes() == (
            REPO / "policies" / name).read_bytes(), name
    again = command(installed, ["pack", "copy", "policies"], cwd)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert re.fullmatch(r"c7n-imds pack: \S+ already exists \(and \d+ more\): choose an "
                        r"empty folder or pass --force\n", again.stderr), again.stderr

    version = command(installed, ["--version"], cwd)
    assert version.stdout.startswith("c7n-imds "), version.stdout
    templates = command(installed, ["templates-dir"], cwd)
    assert (Path(templates.stdout.strip()) / "imds.html.j2").is_file()
    assert Path(templates.stdout.strip()).is_relative_to(site)


def test_demo_from_an_empty_directory(installed, tmp_path):
    result = command(installed, ["demo", "--output-dir", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "converted" in result.stdout and "held back" in result.stdout
    assert "new template version" in result.stdout
    assert "proposed to stack demo-shop" in result.stdout  # the stack-owned group


def readme_steps():
    """The shell lines of the README's "Running against a real account" block."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Running against a real account", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_readme_steps_work_line_by_line(installed, moto, tmp_path):
    """Every c7n-imds line of the README, in order, from an empty directory against a
    moto server standing in for the account: no traceback, and each step that must
    succeed does (doctor may report what moto cannot answer, but never crash)."""
    endpoint, session = moto
    from tests.support.estates import seed
    seed(session)
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    _, bin_dir, _ = installed
    env = aws_env(endpoint)
    env["PATH"] = "%s:/usr/bin:/bin" % bin_dir
    env["HOME"] = str(tmp_path)
    steps = [line for line in readme_steps() if line.startswith("c7n-imds ")]
    assert [s.split()[1] for s in steps] == [
        "pack", "doctor", "validate", "run", "report", "plan", "run", "summary"], steps
    cwd = tmp_path / "work"
    cwd.mkdir()
    for step in steps:
        result = subprocess.run(["bash", "-c", step], cwd=cwd, env=env,
                                capture_output=True, text=True, timeout=600)
        assert "Traceback" not in result.stderr + result.stdout, (step, result.stderr)
        if not step.startswith("c7n-imds doctor"):
            assert result.returncode == 0, (step, result.stdout, result.stderr)
    assert (cwd / "out" / "autoscaling-3-convert-to-imdsv2-launch-template" /
            "resources.json").is_file()
