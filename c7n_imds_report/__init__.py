"""`c7n-imds summary`: where an organization stands on IMDSv2. ``load`` reads output
trees (folders or S3), ``aggregate`` counts (pure) into the shape ``schema.json``
documents, with ``runs`` (the runs of a tree, each scan's state), ``controls`` (which
control judges a group) and ``owners`` (stack-owned groups, what fixes them);
``display`` and ``stack_owned`` are what every format shows, ``render`` formats the
table, CSV, JSON and Markdown, ``dashboard`` the HTML page (its tables in
``dashboard_tables``), ``cli`` is the command; each layer imports only the ones before it
(the HTML renderer is reached from ``render`` at call time)."""
