-- DuckDB: the same views as tables.sql over a local tree (or, with httpfs, the bucket),
-- so that queries.sql runs unchanged. {root} is the tree, its files gzipped or not.
CREATE OR REPLACE VIEW c7n_imds_outputs AS
SELECT regexp_replace(filename, '/metadata\.json(\.gz)?$', '') AS folder,
       config.account_id AS account, config.region AS region, policy.name AS policy,
       policy.resource AS resource, CAST(execution.start AS DOUBLE) AS started
FROM read_json('{root}/**/metadata.json*', filename = true, union_by_name = true,
               columns = {policy: 'STRUCT(name VARCHAR, resource VARCHAR)',
                          config: 'STRUCT(account_id VARCHAR, region VARCHAR)',
                          execution: 'STRUCT(start DOUBLE)'});

CREATE OR REPLACE VIEW c7n_imds_records AS
SELECT regexp_replace(filename, '/resources\.json(\.gz)?$', '') AS folder,
       coalesce(r.AutoScalingGroupName, r.LaunchConfigurationName, r.InstanceId) AS name,
       coalesce(r."c7n-imds:launch".HttpTokens, r.MetadataOptions.HttpTokens) AS http_tokens,
       r."c7n-imds:launch".LaunchType AS launch_type
FROM read_json('{root}/**/resources.json*', filename = true, format = 'array',
               columns = {AutoScalingGroupName: 'VARCHAR', LaunchConfigurationName: 'VARCHAR',
                          InstanceId: 'VARCHAR',
                          MetadataOptions: 'STRUCT(HttpTokens VARCHAR)',
                          "c7n-imds:launch": 'STRUCT(LaunchType VARCHAR, HttpTokens VARCHAR)'}
               ) AS r;

CREATE OR REPLACE VIEW c7n_imds_outcomes AS
SELECT regexp_replace(filename, '/imds-changes\.json(\.gz)?$', '') AS folder,
       o.AutoScalingGroupName AS name, o.Status AS status, o.Action AS action
FROM (SELECT filename, unnest(Outcomes) AS o
      FROM read_json('{root}/**/imds-changes.json*', filename = true,
                     columns = {Outcomes: 'STRUCT(AutoScalingGroupName VARCHAR, Status VARCHAR, Action VARCHAR)[]'}));
