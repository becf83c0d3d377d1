-- kmortem store schema v1 (SQLite). Times are Unix milliseconds (UTC).
CREATE TABLE crash_groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    signature   TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    count       INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);

CREATE TABLE reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id        INTEGER NOT NULL REFERENCES crash_groups(id),
    host            TEXT NOT NULL,
    kernel_release  TEXT,
    title           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    source          TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    raw             TEXT NOT NULL,
    parsed          TEXT NOT NULL,
    dedup_key       TEXT UNIQUE
);

CREATE INDEX reports_group ON reports(group_id, id);
CREATE INDEX reports_received ON reports(received_at);
CREATE INDEX reports_host ON reports(host, id);
