-- kmortem store schema v2: where a report's identity comes from (`origin`), and alert claims that
-- several servers on one database share, so that an alert fires once per event.
ALTER TABLE reports ADD COLUMN origin TEXT NOT NULL DEFAULT 'shared_token';
UPDATE reports SET origin = 'unauthenticated' WHERE source = 'netconsole';
UPDATE reports SET origin = 'local' WHERE source LIKE 'file:%';
CREATE TABLE alert_claims (
    rule        TEXT NOT NULL,
    group_id    BIGINT NOT NULL,
    fired_at    BIGINT NOT NULL,
    PRIMARY KEY (rule, group_id)
);
