"""c7n-imds: Cloud Custodian filters and actions that move Auto Scaling groups to IMDSv2.

Cloud Custodian no longer loads third-party plugins by entry point: filters and actions
exist only in a process that imported this package before loading policies. Importing
``c7n_imds`` registers everything; doing it twice changes nothing (Python imports a
module once, and registration happens at import).
"""
__version__ = "0.1.0"


def register():
    """Register our filters and actions with c7n's resource registries (idempotent)."""
    from c7n_imds import filters, rollout, actions  # noqa: F401  (import registers)


register()
