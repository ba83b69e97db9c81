"""The built wheel, as a user gets it: installed (non-editable) into a fresh virtualenv
and run from an empty directory, where no checkout is in sight - first alone, without
extras (every runtime import must come from install_requires: the CloudFormation
path's template parser included), then with the demo extra added.

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

from c7n_imds_testing import aws_env
from tests.conftest import REPO

# module-scoped fixtures: the whole module on one worker (make test-e2e: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("wheel")

E2E = True
SOURCES = (
    "setup.py",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "constraints.txt",
    "c7n_imds",
    "c7n_imds_report",
    "c7n_imds_testing",
    "c7n_imds_demo",
    "policies",
)
PACK_FILES = sorted(
    p.relative_to(REPO / "policies").as_posix() for p in (REPO / "policies").rglob("*.yml")
)


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """(wheel, bin folder, site-packages) of a fresh virtualenv holding the wheel alone,
    no extras; `installed` adds the demo extra to the same virtualenv, so the tests of
    the bare install come first in this file."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copyfile
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__")} if (REPO / name).is_dir() else {}
        copy(REPO / name, source / name, **kwargs)
    dist = root / "dist"
    pip(sys.executable, "wheel", "--no-deps", "-w", str(dist), str(source))
    (wheel,) = dist.glob("c7n_imds-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(str(venv / "bin" / "python"), "install", "-c", str(REPO / "constraints.txt"), str(wheel))
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return wheel, venv / "bin", site


@pytest.fixture(scope="module")
def installed(bare):
    """The same virtualenv with the demo extra (moto) added."""
    wheel, bin_dir, site = bare
    pip(str(bin_dir / "python"), "install", "-c", str(REPO / "constraints.txt"), "%s[demo]" % wheel)
    return bare


def test_bare_wheel_proposes_a_change_set_for_a_stack_owned_group(bare, moto, tmp_path):
    """The wheel alone (no moto, so no cfn-lint brought by it) runs
    policies/remediate-owners.yml from its installed pack: the CloudFormation-owned
    group's stack gets a change set."""
    from c7n_imds_demo.demo import STACK, seed_stack

    _, bin_dir, _ = bare
    python = str(bin_dir / "python")
    assert subprocess.run([python, "-c", "import moto"], capture_output=True).returncode, (
        "moto is in the bare virtualenv: run this test before the demo extra is added"
    )
    endpoint, session = moto
    ec2 = session.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ][0]["SubnetId"]
    seed_stack(session, subnet)
    session.client("sqs").create_queue(QueueName="c7n-mailer")
    env = aws_env(endpoint)
    env["HOME"] = str(tmp_path)
    pack = command(bare, ["pack", "path"], tmp_path, env).stdout.strip()
    result = command(
        bare,
        [
            "run",
            "-s",
            str(tmp_path / "out"),
            "--cache-period",
            "0",
            "-p",
            "autoscaling-3-stack-change-set",
            str(Path(pack) / "remediate-owners.yml"),
        ],
        tmp_path,
        env,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    summaries = session.client("cloudformation").list_change_sets(StackName=STACK)["Summaries"]
    assert [
        s["ChangeSetName"] for s in summaries if s["ChangeSetName"].startswith("c7n-imds-imdsv2-")
    ], (summaries, result.stderr)


def test_bare_wheel_names_the_extra_the_demo_needs(bare, tmp_path):
    """Without the demo extra (moto), `c7n-imds demo` says what to install, in one line."""
    result = command(bare, ["demo"], tmp_path)
    assert result.returncode == 1 and result.stdout == "", result
    assert result.stderr == "c7n-imds demo: not installed: pip install 'c7n-imds[demo]'\n"


def pip(python, *args):
    result = subprocess.run(
        [python, "-m", "pip", "--quiet", "--disable-pip-version-check"] + list(args),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def command(installed, args, cwd, env=None):
    _, bin_dir, _ = installed
    return subprocess.run(
        [str(bin_dir / "c7n-imds")] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_wheel_carries_the_pack_byte_for_byte(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        packed = {
            n[len("c7n_imds/pack/") :]: archive.read(n)
            for n in archive.namelist()
            if n.startswith("c7n_imds/pack/")
        }
        names = archive.namelist()
    assert sorted(packed) == PACK_FILES
    for name, content in packed.items():
        assert content == (REPO / "policies" / name).read_bytes(), name
    assert "c7n_imds/mail/imds.html.j2" in names
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
        assert (cwd / "policies" / name).read_bytes() == (REPO / "policies" / name).read_bytes(), (
            name
        )
    again = command(installed, ["pack", "copy", "policies"], cwd)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert re.fullmatch(
        r"c7n-imds pack: \S+ already exists \(and \d+ more\): choose an "
        r"empty folder or pass --force\n",
        again.stderr,
    ), again.stderr

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
        "pack",
        "doctor",
        "validate",
        "run",
        "report",
        "plan",
        "run",
        "summary",
    ], steps
    cwd = tmp_path / "work"
    cwd.mkdir()
    for step in steps:
        result = subprocess.run(
            ["bash", "-c", step], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert "Traceback" not in result.stderr + result.stdout, (step, result.stderr)
        if not step.startswith("c7n-imds doctor"):
            assert result.returncode == 0, (step, result.stdout, result.stderr)
    assert (
        cwd / "out" / "autoscaling-3-convert-to-imdsv2-launch-template" / "resources.json"
    ).is_file()
