"""`c7n-imds summary`: where an organization stands on IMDSv2. ``load`` reads output
trees (folders or S3), ``aggregate`` counts (pure) into the shape ``schema.json``
documents, ``render`` formats the table, CSV, JSON and Markdown, ``dashboard`` the HTML
page, ``cli`` is the command; each layer imports only the ones before it (the HTML
renderer is reached from ``render`` at call time)."""
