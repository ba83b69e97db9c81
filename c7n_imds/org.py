"""`c7n-imds org ...`: c7n-org with the plugin present in every worker process.

c7n-org runs each account and region in a ProcessPoolExecutor. With the `spawn` start
method (macOS, Windows, Python 3.14's default on Linux) a worker starts from a fresh
interpreter that never imported c7n_imds, so our filters and actions would be unknown
there. The pool c7n-org creates is swapped for one whose workers import the plugin
first. C7N_IMDS_START_METHOD (fork | spawn | forkserver) picks the start method.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import c7n_imds


class PluginProcessPool(ProcessPoolExecutor):
    """A process pool whose workers register c7n_imds before running anything."""

    def __init__(self, max_workers=None, **kwargs):
        method = os.environ.get("C7N_IMDS_START_METHOD")
        if method:
            kwargs.setdefault("mp_context", multiprocessing.get_context(method))
        kwargs.setdefault("initializer", start_worker)
        super().__init__(max_workers=max_workers, **kwargs)


def start_worker():
    """A worker registers the plugin and, as the parent did, escapes its log records
    (a spawned worker inherits the umask, not the logging set-up)."""
    from c7n_imds.log_records import escape_log_records
    c7n_imds.register()
    escape_log_records()


def main(args):
    import c7n_org.cli as org_cli

    from c7n_imds.aws import patient_command_retries
    if args[:1] == ["run"]:
        patient_command_retries()
    # c7n-org picks its executor by this module-level name when a command runs.
    org_cli.ProcessPoolExecutor = PluginProcessPool
    return org_cli.cli.main(args=list(args), prog_name="c7n-imds org")
