"""c7n_imds/mail: the shipped c7n-mailer templates render with c7n-mailer's own renderer."""

import json
import logging

from c7n_mailer.utils import get_rendered_jinja

from tests.conftest import REPO

TEMPLATES = [str(REPO / "c7n_imds" / "mail")]
GROUP = {
    "AutoScalingGroupName": 'web "blue"',
    "Tags": [{"Key": "c7n-imds:exempt", "Value": "agent until 2027-01-31"}],
    "c7n-imds:launch": {"LaunchType": "launch-template", "LaunchName": "web-lt"},
    "c7n-imds:imdsv1-calls": {"Total": 3, "Days": 14, "Incomplete": False},
}
MESSAGE = {
    "account": "prod",
    "account_id": "123456789012",
    "region": "eu-west-1",
    "policy": {"name": "asg-imdsv1-in-use-held-back", "resource": "asg"},
    "action": {
        "violation_desc": "They allow IMDSv1.",
        "action_desc": "Not changed.",
        "template": "imds.html",
        "slack_template": "imds_slack",
    },
}


def render(template_key, default):
    return get_rendered_jinja(
        "owner@example.com",
        MESSAGE,
        [GROUP],
        logging.getLogger("test"),
        template_key,
        default,
        TEMPLATES,
    )


def test_html_template_lists_each_group():
    html = render("template", "imds.html")
    for expected in (
        'web &#34;blue&#34;',
        "123456789012 (prod)",
        "eu-west-1",
        "launch-template web-lt",
        "3 in 14 days",
        "agent until 2027-01-31",
        "Not changed.",
    ):
        assert expected in html, expected


def test_html_template_names_the_change_set_for_the_stack_owner():
    """A notify after create-stack-change-set: the owner learns the change set's name,
    its stack and the command to execute it; groups without an owner fix say none."""
    proposed = dict(
        GROUP,
        **{
            "c7n-imds:owner-fix": {
                "Action": "create-stack-change-set",
                "Status": "proposed",
                "StackName": "web<1>",
                "ChangeSetName": "c7n-imds-imdsv2-0123456789ab",
                "Detail": "change set c7n-imds-imdsv2-0123456789ab on stack web<1> is ready for "
                "review: aws cloudformation execute-change-set --stack-name web<1> "
                "--change-set-name c7n-imds-imdsv2-0123456789ab",
            }
        },
    )
    html = get_rendered_jinja(
        "owner@example.com",
        MESSAGE,
        [proposed, GROUP],
        logging.getLogger("test"),
        "template",
        "imds.html",
        TEMPLATES,
    )
    assert "<th>fix at its owner</th>" in html
    assert (
        "change set <code>c7n-imds-imdsv2-0123456789ab</code> on stack <code>web&lt;1&gt;" in html
    )
    assert "aws cloudformation execute-change-set --stack-name web&lt;1&gt;" in html
    assert html.count("<td>none</td>") == 1
    assert "fix at its owner" not in render("template", "imds.html")


def test_slack_template_is_valid_json():
    payload = json.loads(render("slack_template", "imds_slack"))
    attachment = payload["attachments"][0]
    assert payload["channel"] == "owner@example.com"
    assert attachment["fields"][0]["title"] == 'web "blue"'
    assert "IMDSv1 calls: 3" in attachment["fields"][0]["value"]
    assert "eu-west-1" in attachment["title"]


def _notify_actions():
    import yaml

    for path in sorted((REPO / "policies").rglob("*.yml")):
        for policy in (yaml.safe_load(path.read_text()) or {}).get("policies") or ():
            for action in policy.get("actions") or ():
                if isinstance(action, dict) and action.get("type") == "notify":
                    yield path.name, policy, action


def test_every_subject_names_the_account_with_or_without_an_alias():
    """custodian fills `account` with the IAM account alias, which most accounts lack;
    the subject must still say which account (its id) a mail is about."""
    from c7n_mailer.utils import get_message_subject

    actions = list(_notify_actions())
    assert len(actions) >= 4
    for name, policy, action in actions:
        for alias, expected in (
            ("", "account 123456789012, eu-west-1"),
            ("prod", "account 123456789012 (prod), eu-west-1"),
        ):
            subject = get_message_subject(
                dict(MESSAGE, account=alias, policy=policy, action=action)
            )
            assert expected in subject, (name, policy["name"], subject)


HOSTILE_GROUP = dict(
    GROUP,
    **{
        "AutoScalingGroupName": "<!channel> web\n<https://evil.example|click> & co",
        "c7n-imds:launch": {"LaunchType": "launch-template", "LaunchName": "<@U123>"},
    },
)


def test_slack_mentions_and_links_from_the_account_arrive_escaped():
    """A group named `<!channel>` notifies nobody: Slack's three characters are
    escaped in everything the account typed, and a line break is written out."""
    message = dict(MESSAGE, account="<!here>")
    payload = json.loads(
        get_rendered_jinja(
            "owner@example.com",
            message,
            [HOSTILE_GROUP],
            logging.getLogger("test"),
            "slack_template",
            "imds_slack",
            TEMPLATES,
        )
    )
    attachment = payload["attachments"][0]
    field = attachment["fields"][0]
    assert field["title"] == ("&lt;!channel&gt; web\\n&lt;https://evil.example|click&gt; &amp; co")
    assert field["value"] == "launches from launch-template &lt;@U123&gt;; IMDSv1 calls: 3"
    assert attachment["title"].endswith("123456789012 (&lt;!here&gt;) eu-west-1")
    text = json.dumps(payload)
    assert "<!" not in text and "<@" not in text and "<http" not in text


def test_html_template_escapes_every_value_even_without_a_filter():
    """Autoescaping is on for the whole template: a value printed without |e (here the
    calls figures) is escaped all the same, and none twice."""
    group = dict(
        HOSTILE_GROUP,
        **{"c7n-imds:imdsv1-calls": {"Total": "<img src=x>", "Days": "<script>alert(1)</script>"}},
    )
    html = get_rendered_jinja(
        "owner@example.com",
        MESSAGE,
        [group],
        logging.getLogger("test"),
        "template",
        "imds.html",
        TEMPLATES,
    )
    assert "<script>" not in html and "<img" not in html and "<!channel>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;!channel&gt; web" in html and "&amp;amp;" not in html
