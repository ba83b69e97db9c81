"""The pack's c7n-mailer examples: each is a valid c7n-mailer configuration (its own
schema) for exactly one delivery - SES or SMTP - since c7n-mailer picks SMTP whenever
smtp_server is set, an example that set both would never use SES."""

import jsonschema
import pytest
import yaml
from c7n_mailer.cli import CONFIG_SCHEMA

from tests.conftest import REPO

MAILER = REPO / "policies" / "mailer"


@pytest.mark.parametrize(
    "name, delivery", [("mailer.example.yml", "ses"), ("mailer-smtp.example.yml", "smtp")]
)
def test_mailer_example_is_valid_for_one_delivery(name, delivery):
    config = yaml.safe_load((MAILER / name).read_text())
    jsonschema.validate(config, CONFIG_SCHEMA)
    smtp = {k for k in config if k.startswith("smtp_")}
    ses = {k for k in config if k.startswith("ses_")}
    if delivery == "ses":
        assert not smtp and ses == {"ses_region"}, name
    else:
        assert not ses and "smtp_server" in smtp, name
    assert "owner" in config["contact_tags"]
