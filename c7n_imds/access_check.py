"""Can the current credentials reach AWS at all? Asked once before a run is handed to
custodian, because custodian itself answers missing credentials with over a thousand
lines of tracebacks, and an unreachable endpoint with a minute of retries per client.

One STS GetCallerIdentity call (it needs no IAM permission) with a short timeout tells
all three cases apart: no credentials, credentials AWS rejects, no route to the endpoint.
"""

import os
import re

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

# A real STS answers in well under a second; two short attempts are enough to tell an
# endpoint that is down from one that is slow, in at most about 20 seconds.
PROBE_CONFIG = Config(
    connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 2}
)
REJECTED = (
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "AccessDenied",
)


class Unreachable(Exception):
    """One line that says what is wrong with the way to AWS and what to do."""


def caller_identity(profile=None, region=None, session=None, endpoint=None, accounts_file=False):
    """STS's answer for the current credentials, or Unreachable with one line.
    ``endpoint`` overrides the one botocore would choose (AWS_ENDPOINT_URL included);
    ``accounts_file``: the profile comes from c7n-org's accounts file, not --profile."""
    try:
        session = session or boto3.Session(profile_name=profile or None)
        if session.get_credentials() is None:
            raise Unreachable(
                "no AWS credentials found: set AWS_PROFILE (or --profile), "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance "
                "or task role is available"
            )
        sts = session.client(
            "sts",
            region_name=_probe_region(region, session),
            endpoint_url=endpoint,
            config=PROBE_CONFIG,
        )
        return sts.get_caller_identity()
    except ProfileNotFound as error:
        raise Unreachable(profile_line(profile, error, accounts_file)) from None
    except PartialCredentialsError as error:
        raise Unreachable(
            "incomplete AWS credentials (%s): set both the key id and the secret" % error
        ) from None
    except NoCredentialsError:
        raise Unreachable(
            "no AWS credentials found: set AWS_PROFILE (or --profile), or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise Unreachable(
            "cannot reach AWS STS (%s): check the network, proxy settings and "
            "AWS_ENDPOINT_URL" % error
        ) from None
    except ResponseParserError:
        raise Unreachable(
            "the endpoint for AWS STS did not answer as AWS does (an empty or non-AWS "
            "reply): check proxy settings and AWS_ENDPOINT_URL"
        ) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in REJECTED:
            raise Unreachable(
                "AWS rejected the credentials (%s: %s): renew them or "
                "choose another profile" % (code, error.response["Error"].get("Message", ""))
            ) from None
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("", "Unknown") or not code:
            raise Unreachable(
                "the endpoint for AWS STS answers HTTP %d without an AWS error (a proxy or "
                "not AWS): check proxy settings and AWS_ENDPOINT_URL" % status
            ) from None
        if status >= 500:
            raise Unreachable(
                "the endpoint for AWS STS answers HTTP %d: retry later, or check proxy "
                "settings and AWS_ENDPOINT_URL" % status
            ) from None
        raise Unreachable(
            "AWS STS GetCallerIdentity failed (%s): %s" % (code, plain(str(error)))
        ) from None
    except BotoCoreError as error:
        raise Unreachable("cannot use the AWS configuration: %s" % error) from None


HTML = re.compile(r"<\s*(!doctype|html|head|body|title|h1|div)\b", re.I)
TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
MAX_ERROR_TEXT = 300


def plain(text):
    """An error's text for one line. A proxy, a captive portal or a wrong endpoint
    answers with an HTML page, which botocore passes on whole: it is named as such,
    with its title, never pasted."""
    if HTML.search(text):
        title = TITLE.search(text)
        return (
            "the endpoint answered with an HTML page, not as AWS does%s: check proxy "
            "settings and AWS_ENDPOINT_URL"
            % (
                " (%s)" % " ".join(re.sub(r"<[^>]+>", " ", title.group(1)).split())[:80]
                if title
                else ""
            )
        )
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def profile_line(profile, error, accounts_file=False):
    """An unknown profile, named with where it was given (--profile or the environment)."""
    named = getattr(error, "kwargs", {}).get("profile") or profile
    given = (
        ("profile %s" if accounts_file else "--profile %s") % profile
        if profile
        else "AWS_PROFILE=%s" % os.environ["AWS_PROFILE"]
        if os.environ.get("AWS_PROFILE")
        else "AWS_DEFAULT_PROFILE=%s" % os.environ.get("AWS_DEFAULT_PROFILE", named)
    )
    return (
        "%s: the config profile %r could not be found; name a profile of "
        "~/.aws/config or ~/.aws/credentials (aws configure list-profiles)" % (given, named)
    )


def _probe_region(region, session):
    """STS answers in every region; 'all' and an unset region fall back to us-east-1."""
    if region and region != "all":
        return region
    return session.region_name or "us-east-1"
