"""Moved to c7n_imds_testing: the moto harness is not part of the plugin. This alias
remains only for the modules issue 24 is moving (tests/test_summary.py,
test_e2e_summary_s3.py, test_e2e_org.py, bench/summary.py), which import it by its old
name; delete it when they import c7n_imds_testing. Importing it imports no moto."""

from c7n_imds_testing import EndpointSession, aws_env, moto_server, run_c7n_imds  # noqa: F401
