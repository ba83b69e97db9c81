"""The closed vocabularies of our value filters. A typo such as `key: HttpToken` or
`value: requried` would otherwise validate and then match nothing - a remediation
policy that silently does nothing. Checked at `c7n-imds validate` time.

At -v each of these filters also says why it left a resource out: custodian logs only
"Filtered from 7 to 1 asg", which leaves a user guessing which gate held a group back."""

import logging

from c7n.exceptions import PolicyValidationError
from c7n.filters import ValueFilter

# ValueFilter's special values, always allowed.
SPECIAL_VALUES = ("absent", "present", "not-null", "empty")
TOKENS = ("required", "optional")
ON_OFF = ("enabled", "disabled")
BOOLEAN = (True, False)
NUMBER = "number"
ANY = "any"

LAUNCH_KEYS = {
    "LaunchType": ("launch-configuration", "launch-template", "mixed-instances-policy"),
    "LaunchName": ANY,
    "LaunchTemplateId": ANY,
    "LaunchTemplateVersion": NUMBER,
    "LaunchTemplateVersionSpecified": ANY,
    "ImageId": ANY,
    "HttpTokens": TOKENS,
    "HttpEndpoint": ON_OFF,
    "HttpPutResponseHopLimit": NUMBER,
    "InstanceMetadataTags": ON_OFF,
    "LaunchSourceMissing": BOOLEAN,
    "LaunchSourceError": ANY,
    "EffectiveHttpTokens": TOKENS,
    "ScaleOutBlocked": BOOLEAN,
    "RemediationPending": BOOLEAN,
}
LAUNCH_CONFIGURATION_KEYS = {
    k: v
    for k, v in LAUNCH_KEYS.items()
    if k
    not in (
        "LaunchTemplateVersionSpecified",
        "EffectiveHttpTokens",
        "ScaleOutBlocked",
        "LaunchSourceError",
        "RemediationPending",
    )
}
USAGE_KEYS = {"Total": NUMBER}
EXEMPTION_KEYS = {
    "Exempt": BOOLEAN,
    "Malformed": BOOLEAN,
    "Expired": BOOLEAN,
    "Reason": ANY,
    "Until": ANY,
    "Error": ANY,
}


def _fits(value, allowed):
    if allowed == ANY or value in SPECIAL_VALUES:
        return True
    if allowed == NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if allowed == BOOLEAN:
        return isinstance(value, bool)
    return value in allowed


def check_key_and_value(filter_, vocabulary):
    """Raise PolicyValidationError naming the policy, filter, key and what is allowed."""
    data = filter_.data
    policy = (filter_.manager.data or {}).get("name", "?") if filter_.manager else "?"
    key = data.get("key")
    if key not in vocabulary:
        raise PolicyValidationError(
            "policy %s: filter %s: unknown key %r; use one of: %s"
            % (policy, data.get("type"), key, ", ".join(sorted(vocabulary)))
        )
    allowed = vocabulary[key]
    if (
        "value" not in data
        or data.get("value_type")
        or data.get("op") in ("regex", "regex-case", "glob", "contains", "intersect", "difference")
    ):
        return
    values = data["value"] if isinstance(data["value"], list) else [data["value"]]
    wrong = [v for v in values if not _fits(v, allowed)]
    if wrong:
        if allowed == NUMBER:
            expected = "a number"
        elif allowed == BOOLEAN:
            expected = "true or false"
        else:
            expected = "one of: " + ", ".join(repr(a) for a in allowed)
        raise PolicyValidationError(
            "policy %s: filter %s: value %s is not allowed for key %s; use %s"
            % (policy, data.get("type"), ", ".join(repr(w) for w in wrong), key, expected)
        )


log = logging.getLogger("custodian.c7n_imds.filters")


class ExplainsDrops:
    """Mixed into our value filters: a debug line per resource the filter leaves out.
    ``why(annotation)`` is the reason in the filter's own words; the default names the
    key, its value and what the policy asked for."""

    def explained(self, resource, matched, annotation):
        if not matched and log.isEnabledFor(logging.DEBUG):
            resource_type = self.manager.resource_type
            log.debug(
                "%s %s left out by filter %s: %s",
                self.manager.type,
                resource.get(resource_type.id),
                self.type,
                self.why(annotation),
            )
        return matched

    def why(self, annotation):
        key = self.data.get("key")
        return "%s is %r; the policy asks %s %r" % (
            key,
            annotation.get(key),
            self.data.get("op", "equal"),
            self.data.get("value"),
        )


class AnnotationValueFilter(ExplainsDrops, ValueFilter):
    """A value filter over one annotation of the resource, whose keys and values are a
    closed vocabulary checked at validate time. Subclasses set ``annotation_key``,
    ``vocabulary`` and a ``process`` that annotates."""

    schema_alias = False
    vocabulary = {}

    def validate(self):
        check_key_and_value(self, self.vocabulary)
        return super().validate()

    def __call__(self, resource):
        annotation = resource[self.annotation_key]
        return self.explained(resource, self.match(annotation), annotation)
