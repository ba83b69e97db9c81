-- The summary's queries, the same text on Athena (tables.sql) and DuckDB (duckdb.sql).
-- State after the run: of each group, the last launch seen (a later policy's record, or
-- a change the action's read-back proved); each resource counted once per control.

-- name: groups_after_run
-- Each group's launch when the run ended, per account and region.
WITH seen AS (
  SELECT o.account, o.region, r.name, r.http_tokens, r.launch_type, o.started, 0 AS step
  FROM c7n_imds_records r JOIN c7n_imds_outputs o ON o.folder = r.folder
  WHERE o.resource IN ('asg', 'aws.asg') AND r.http_tokens IS NOT NULL
  UNION ALL
  SELECT o.account, o.region, c.name, 'required',
         CASE WHEN c.action = 'convert-to-launch-template' THEN 'launch-template' END,
         o.started, 1
  FROM c7n_imds_outcomes c JOIN c7n_imds_outputs o ON o.folder = c.folder
  WHERE c.status = 'changed'
), ranked AS (
  SELECT *, row_number() OVER (PARTITION BY account, region, name
                               ORDER BY started DESC, step DESC) AS n,
         max(launch_type) FILTER (WHERE step = 0) OVER (
           PARTITION BY account, region, name) AS seen_type
  FROM seen
)
SELECT account, region, name, http_tokens, coalesce(launch_type, seen_type) AS launch_type
FROM ranked WHERE n = 1;

-- name: controls
-- Per control, account and region: groups failing it after the run (AutoScaling.3: a
-- launch configuration allowing IMDSv1; AutoScaling.9: a launch configuration at all;
-- EC2.170: a template allowing IMDSv1).
SELECT account, region, control, count(*) AS non_compliant
FROM (
  SELECT account, region, 'AutoScaling.3' AS control FROM groups_after_run
  WHERE launch_type = 'launch-configuration' AND http_tokens = 'optional'
  UNION ALL
  SELECT account, region, 'AutoScaling.9' FROM groups_after_run
  WHERE launch_type = 'launch-configuration'
  UNION ALL
  SELECT account, region, 'EC2.170' FROM groups_after_run
  WHERE launch_type IN ('launch-template', 'mixed-instances-policy')
    AND http_tokens = 'optional'
) AS failing
GROUP BY account, region, control
ORDER BY account, region, control;

-- name: launch_configurations
-- AutoScaling.3 as Security Hub evaluates it (autoscaling-launchconfig-requires-imdsv2):
-- every launch configuration, used or not; the last record of each.
SELECT account, region, count(*) AS launch_configurations,
       count(*) FILTER (WHERE http_tokens = 'optional') AS non_compliant
FROM (
  SELECT o.account, o.region, r.name, r.http_tokens,
         row_number() OVER (PARTITION BY o.account, o.region, r.name
                            ORDER BY o.started DESC) AS n
  FROM c7n_imds_records r JOIN c7n_imds_outputs o ON o.folder = r.folder
  WHERE o.resource IN ('launch-config', 'aws.launch-config')
) AS latest
WHERE n = 1
GROUP BY account, region
ORDER BY account, region;
