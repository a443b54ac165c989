-- The earliest minute of the usage that queued an application for the alert job: usage that
-- lands in a window already over (the last seconds of a day, an agent's spooled usage after
-- an outage) is checked against that window's limits too, not only the current window's.
ALTER TABLE usage_alert_queue ADD COLUMN earliest timestamptz;
