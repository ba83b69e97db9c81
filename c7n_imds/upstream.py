"""Workarounds for defects of the pinned Cloud Custodian (0.9.53). Each carries a test
(tests/test_upstream.py) that calls custodian's own code and fails once upstream fixes
the defect, so that the workaround is then removed rather than kept by habit."""

from c7n import mu


def security_hub_action_deploys():
    """``SecurityHubAction.add(func, existing)`` calls ``self.cwe.add(func)``, but
    ``CloudWatchEventSource.add`` takes ``(func, existing)``: every ``hub-action``
    policy fails to deploy with a TypeError before any AWS call. The event source is
    handed ``existing`` here; a fixed custodian that passes it itself is left alone."""
    original = mu.SecurityHubAction.add
    if getattr(original, "custodian_original", None):
        return

    def add(self, func, existing):
        cwe_add = self.cwe.add
        self.cwe.add = lambda f, *given: cwe_add(f, *(given or (existing,)))
        try:
            return original(self, func, existing)
        finally:
            del self.cwe.add

    add.custodian_original = original
    mu.SecurityHubAction.add = add


def apply():
    security_hub_action_deploys()
