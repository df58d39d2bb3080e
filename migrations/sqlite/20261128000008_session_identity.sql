-- How the NAS identified itself and the device in its accounting packets, exactly as sent
-- (NULL when it did not send the attribute), and where the packets came from: a
-- Disconnect/CoA-Request (RFC 5176 §3) must name the session the way the NAS does.

ALTER TABLE sessions ADD COLUMN raw_calling_station_id TEXT;
ALTER TABLE sessions ADD COLUMN raw_nas_identifier TEXT;
ALTER TABLE sessions ADD COLUMN raw_nas_ip_address TEXT;
ALTER TABLE sessions ADD COLUMN raw_nas_ipv6_address TEXT;
ALTER TABLE sessions ADD COLUMN source_ip TEXT;
