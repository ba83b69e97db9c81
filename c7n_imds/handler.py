"""Lambda entry point for policies deployed with `mode.handler: c7n_imds.handler.run`.

Custodian's own handler would load the policy without our filters and actions; this
one imports c7n_imds first (registering them), then hands the event to custodian."""

from c7n.handler import dispatch_event

import c7n_imds  # noqa: F401  (registers filters and actions)


def run(event, context=None):
    return dispatch_event(event, context)
