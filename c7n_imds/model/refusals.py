"""One refusal for every change path: the change was not made, nothing was changed for
the groups concerned, and the message says why and what to do.

Each path refuses in its own words (a configuration field nobody can carry, a record
whose provenance is unproven, a stack that cannot take a change set, ...), but all of
them are a :class:`Refused`, so the contract's callers handle one kind of answer: the
group fails with the message and the run goes on with the others. An AWS error, or an
error in c7n-imds itself, is never a refusal.
"""


class Refused(Exception):
    """A change c7n-imds would not make; ``str()`` is the one-line reason."""
