-- PostgreSQL only (change notifications name their target); SQLite nodes read the audit
-- log after the change marker instead. Kept so both stores share one migration history.
SELECT 1;
