"""Whose templates and versions count as c7n-imds's own: the principal running the
policy and those it names in ``trusted-principals`` (c7n_imds.model.provenance decides;
this reads the running identity, once per action run)."""

import logging
import threading

from c7n_imds.aws import AWS_ERRORS, describe_error, imds_session, retry
from c7n_imds.model.provenance import PRINCIPAL_ARN

log = logging.getLogger("custodian.c7n_imds.actions")

TRUSTED_PRINCIPALS_SCHEMA = {
    "type": "array",
    "uniqueItems": True,
    "items": {"type": "string", "pattern": PRINCIPAL_ARN},
}


class Trusting:
    """Mixed into the actions that accept a template or version they did not just
    create: adopting a conversion's template, reverting a group."""

    _trust_lock = threading.Lock()

    def trusted_principals(self):
        """The ARNs whose templates and versions are trusted: the running identity
        (sts GetCallerIdentity, which needs no permission) and ``trusted-principals``.
        When the identity cannot be read only the named ones are trusted."""
        with self._trust_lock:
            if "_trusted" not in self.__dict__:
                named = list(self.data.get("trusted-principals") or ())
                try:
                    identity = retry(imds_session(self.manager).client("sts").get_caller_identity)[
                        "Arn"
                    ]
                except AWS_ERRORS as e:
                    log.warning(
                        "cannot read the running identity (sts GetCallerIdentity: "
                        "%s); trusting only trusted-principals",
                        describe_error(e),
                    )
                    identity = None
                self._trusted = tuple(([identity] if identity else []) + named)
            return self._trusted
