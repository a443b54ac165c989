-- The config stream that last marked an agent connected. An agent restarted at once opens
-- its new stream before the server sees the old one end; only the newest stream's end
-- clears `connected`, so a rolling restart does not show a running agent as down.
ALTER TABLE gateways ADD COLUMN stream_id uuid;
