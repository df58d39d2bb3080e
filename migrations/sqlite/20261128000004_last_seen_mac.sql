-- The MAC a device last authenticated from (Calling-Station-Id). Under EAP-TLS the certificate
-- names the device, so a device with a randomized ("private") MAC is still the same device;
-- this shows which address it used last.
ALTER TABLE devices ADD COLUMN last_seen_mac TEXT;
