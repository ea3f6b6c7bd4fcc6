-- Version 2: what the probe engine reports beyond status and latency.
-- The earliest certificate expiry of a TLS chain (tls checks, https), and on the latest result
-- its phase timings too, so the current state shows where the time went.
ALTER TABLE check_results ADD COLUMN cert_expiry_ms INTEGER;
ALTER TABLE check_latest ADD COLUMN cert_expiry_ms INTEGER;
ALTER TABLE check_latest ADD COLUMN timings TEXT;
