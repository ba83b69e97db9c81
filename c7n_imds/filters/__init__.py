"""The plugin's filters: `imds` (asg, launch-config), `imdsv1-usage` (asg, ec2),
`imds-exempt` (asg), `imds-converted` (launch-config). Importing registers them."""

from c7n_imds.filters import converted, exemption, imds, usage  # noqa: F401
