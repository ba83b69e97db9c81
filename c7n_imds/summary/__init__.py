"""`c7n-imds summary`: where an organization stands on IMDSv2. ``load`` reads output
folders, ``aggregate`` counts (pure), ``render`` formats, ``cli`` is the command; each
layer imports only the ones before it."""
