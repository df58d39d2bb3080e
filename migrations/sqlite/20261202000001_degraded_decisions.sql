-- A decision taken while the registry database was unreachable, on the node's last-known-good
-- data (cache.stale_grace): marked so that `why` and the SOC can tell it apart.

ALTER TABLE decisions ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;
