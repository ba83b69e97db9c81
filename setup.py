import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

# One version source: c7n_imds/__init__.py.
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (ROOT / "c7n_imds" / "__init__.py").read_text(), re.M
).group(1)


class BuildWithPack(build_py):
    """The top-level policies/ stays the one source of the pack; a built package
    carries a copy as c7n_imds/pack/, where `c7n-imds pack` finds it."""

    def run(self):
        super().run()
        source = ROOT / "policies"
        for path in sorted(source.rglob("*.yml")):
            target = Path(self.build_lib) / "c7n_imds" / "pack" / path.relative_to(source)
            self.mkpath(str(target.parent))
            self.copy_file(str(path), str(target))


# The c7n family is released in lock-step; these three versions are tested together.
# Transitive versions (boto3, botocore, moto, ...) are pinned in constraints.txt,
# which the Makefile applies to every install.
setup(
    name="c7n-imds",
    version=VERSION,
    description=(
        "Cloud Custodian plugin and policy pack that moves EC2 Auto Scaling groups "
        "to IMDSv2 (Security Hub AutoScaling.3, AutoScaling.9, EC2.170, EC2.8)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The plugin (c7n_imds: what a policy run and the Lambda archive carry) and three
    # packages beside it, each importing the plugin and never imported by it: the org
    # report (c7n_imds_report; the `report` extra), the moto harness with AWS's
    # behaviour restored (c7n_imds_testing) and the demo built on it (c7n_imds_demo);
    # those two need moto, from the `test` or `demo` extra.
    packages=find_packages(
        include=[
            "c7n_imds",
            "c7n_imds.*",
            "c7n_imds_report",
            "c7n_imds_report.*",
            "c7n_imds_testing",
            "c7n_imds_demo",
        ]
    ),
    package_data={"c7n_imds": ["mail/*"], "c7n_imds_report": ["schema.json", "athena/*.sql"]},
    install_requires=[
        "c7n==0.9.53",
        "c7n-org==0.6.52",
        "c7n-mailer==0.6.52",
        "boto3>=1.43,<1.44",
        "botocore>=1.43,<1.44",
        "tabulate>=0.9",
        # create-stack-change-set parses stack templates (YAML short forms) with cfn-lint
        # (c7n_imds/model/cfn.py); moto brings it to the test and demo extras only
        "cfn-lint==1.58.0",
        # imported directly; custodian and c7n-org bring them today, but we should not
        # depend on what they happen to pull in
        "PyYAML>=6.0,<7",
        "jsonschema>=4.0,<5",
        "python-dateutil>=2.8,<3",
        "click>=8.0,<9",
    ],
    extras_require={
        "test": [
            "pytest==9.2.0",
            "pytest-xdist==3.8.0",  # make test runs the suite on every core
            "placebo==0.10.0",
            "moto[server]==5.2.5",
            "hypothesis==6.170.17",
            "aiosmtpd==1.4.6",
            "ruff==0.17.6",
            "mypy==2.4.1",  # make lint type-checks the pure model
            "jsonschema==4.26.0",  # the summary's schema; already custodian's
            "c7n-left==0.3.39",  # runs policies/left over Terraform (c7n 0.9.53's)
            "parliament==1.6.4",  # lints the IAM policies iam-policy prints (docs/iam.md)
            "duckdb==2.0.0",  # the report's Athena queries, run locally (tests/test_summary.py)
            "orjson==3.13.0",  # the report's JSON at organisation scale
        ],
        # c7n-imds summary's own: DuckDB runs the Athena queries (athena/*.sql) locally;
        # orjson parses and writes an organisation's files several times faster
        "report": ["duckdb==2.0.0", "orjson==3.13.0"],
        # make demo runs an embedded moto server
        "demo": ["moto[server]==5.2.5"],
    },
    cmdclass={"build_py": BuildWithPack},
    entry_points={"console_scripts": ["c7n-imds = c7n_imds.cli:main"]},
)
