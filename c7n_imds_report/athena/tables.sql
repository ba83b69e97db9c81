-- Athena: c7n-org's output tree in S3, read where it is. Replace s3://BUCKET/PREFIX/ with
-- the -s of `c7n-imds org run` (c7n-org writes PREFIX/<account>/<region>/<policy>/
-- YYYY/MM/DD/HH/<file>.gz). Custodian writes its JSON pretty-printed, one document per
-- file, which Athena's line-based JSON SerDes cannot read; the Amazon Ion SerDe reads
-- JSON (Ion is a superset) across lines. Each table lists every object under the prefix:
-- the views below keep one file name each through "$path".

CREATE EXTERNAL TABLE IF NOT EXISTS c7n_imds_metadata (
  policy struct<name:string, resource:string,
                metadata:struct<controls:array<string>, inventory:boolean>>,
  config struct<account_id:string, region:string>,
  execution struct<start:double>
)
ROW FORMAT SERDE 'com.amazon.ionhiveserde.IonHiveSerDe'
STORED AS ION
LOCATION 's3://BUCKET/PREFIX/';

-- resources.json is one list per file: the whole list is the row's one column
CREATE EXTERNAL TABLE IF NOT EXISTS c7n_imds_resources (
  resources array<struct<
    AutoScalingGroupName:string, LaunchConfigurationName:string, InstanceId:string,
    MetadataOptions:struct<HttpTokens:string>,
    `c7n-imds:launch`:struct<LaunchType:string, HttpTokens:string>>>
)
ROW FORMAT SERDE 'com.amazon.ionhiveserde.IonHiveSerDe'
WITH SERDEPROPERTIES ('ion.resources.path_extractor' = '()')
STORED AS ION
LOCATION 's3://BUCKET/PREFIX/';

CREATE EXTERNAL TABLE IF NOT EXISTS c7n_imds_changes (
  Outcomes array<struct<AutoScalingGroupName:string, Status:string, Action:string>>
)
ROW FORMAT SERDE 'com.amazon.ionhiveserde.IonHiveSerDe'
STORED AS ION
LOCATION 's3://BUCKET/PREFIX/';

-- The views the queries (queries.sql) read: one row per resource record or outcome,
-- with the output's folder ("$path" less its file name) to join on.
CREATE OR REPLACE VIEW c7n_imds_outputs AS
SELECT regexp_replace("$path", '/metadata\.json(\.gz)?$', '') AS folder,
       config.account_id AS account, config.region AS region, policy.name AS policy,
       policy.resource AS resource, execution.start AS started
FROM c7n_imds_metadata WHERE "$path" LIKE '%/metadata.json%';

CREATE OR REPLACE VIEW c7n_imds_records AS
SELECT regexp_replace("$path", '/resources\.json(\.gz)?$', '') AS folder,
       coalesce(r.AutoScalingGroupName, r.LaunchConfigurationName, r.InstanceId) AS name,
       coalesce(r."c7n-imds:launch".HttpTokens, r.MetadataOptions.HttpTokens) AS http_tokens,
       r."c7n-imds:launch".LaunchType AS launch_type
FROM c7n_imds_resources CROSS JOIN UNNEST(resources) AS t (r)
WHERE "$path" LIKE '%/resources.json%';

CREATE OR REPLACE VIEW c7n_imds_outcomes AS
SELECT regexp_replace("$path", '/imds-changes\.json(\.gz)?$', '') AS folder,
       o.AutoScalingGroupName AS name, o.Status AS status, o.Action AS action
FROM c7n_imds_changes CROSS JOIN UNNEST(Outcomes) AS t (o)
WHERE "$path" LIKE '%/imds-changes.json%';
