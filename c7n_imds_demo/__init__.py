"""c7n-imds's demo, its own package beside the plugin: `c7n-imds demo` runs the pack
against an embedded moto server (c7n_imds_testing), so it needs the `demo` extra
(moto). A policy run, and so the Lambda archive, never imports it."""
