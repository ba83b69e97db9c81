"""Pure decisions: no boto3, no c7n, no I/O. Plain dicts in AWS's own field names in,
plain dicts or typed records out, so every rule can be tested exhaustively."""
