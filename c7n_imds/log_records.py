"""Log records that account-made text cannot forge (c7n_imds.model.escape), installed by
the commands that read an account (c7n_imds.cli, and c7n-org's workers in
c7n_imds.org) - never at import: importing c7n_imds only registers."""

import logging

from c7n_imds.model import escape

# Whose log records are escaped: custodian's (ours are custodian.c7n_imds.*) and c7n-org's.
ESCAPED_LOGGERS = ("custodian", "c7n_org")


def escape_log_records():
    """Every log record of custodian and c7n-org - ours are custodian.c7n_imds.* - gets
    its message (and the messages in its traceback) with control characters written out
    (c7n_imds.model.escape), so that a newline in a tag value, a group name or an AWS
    error message forges no record in custodian-run.log, on standard error or for
    `c7n-imds summary`, which reads that log back for errors. Done where records are
    made, once for every handler (custodian adds custodian-run.log's per policy), rather
    than at each of the many places our modules log ``%s`` of account-made values.
    Idempotent; wraps whatever record factory is in place."""
    current = logging.getLogRecordFactory()
    if getattr(current, "escapes_controls", False):
        return

    def factory(*args, **kwargs):
        record = current(*args, **kwargs)
        if record.name.startswith(ESCAPED_LOGGERS):
            escape_record(record)
        return record

    factory.escapes_controls = True
    logging.setLogRecordFactory(factory)


def escape_record(record):
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - arguments that do not fit: logging reports it
        return record
    record.msg, record.args = escape.controls(message), ()
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = escape.traceback_text(record.exc_info)
    return record
