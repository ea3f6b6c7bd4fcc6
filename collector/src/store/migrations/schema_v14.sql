-- Version 14: keys every collector on this database shares, each made once, by the first
-- collector that needs it, from the kernel's random source: `ack_link` signs the links in
-- notifications that acknowledge an alert (notify/link.rs), which any collector behind the
-- load balancer must verify and which outlive a restart.
CREATE TABLE shared_keys (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
