-- A deleted application's usage is still owed: the billing run reads it by the application
-- ids of subscription_segments, which outlive the application. Its rollups used to go with
-- the application (ON DELETE CASCADE), so usage between the last invoice and the deletion was
-- never billed. They now stay as long as the application has a subscription segment, and go
-- with the last of the two.
ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_application_id_fkey;

-- Rollups of an application that neither exists nor has billing history, removed.
CREATE FUNCTION forget_unbilled_usage(application uuid) RETURNS void AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM applications WHERE id = application)
       AND NOT EXISTS (SELECT 1 FROM subscription_segments WHERE application_id = application) THEN
        DELETE FROM usage_rollups WHERE application_id = application;
    END IF;
END;
$$ LANGUAGE plpgsql;

-- The same function as in 20261216000001_billing.sql, with two changes: the deletion of an
-- application that never went live (no segment) takes its rollups with it, and an application
-- of a retired API opens no segment (retiring one ends its applications' billing, and
-- suspending or resuming one after must not start it again).
CREATE OR REPLACE FUNCTION track_subscription() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE subscription_segments SET ended_at = now()
         WHERE application_id = OLD.id AND ended_at IS NULL;
        PERFORM forget_unbilled_usage(OLD.id);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.plan_id IS DISTINCT FROM OLD.plan_id OR NEW.state IN ('pending', 'rejected') THEN
            UPDATE subscription_segments SET ended_at = now()
             WHERE application_id = NEW.id AND ended_at IS NULL;
        END IF;
    END IF;
    IF NEW.state IN ('live', 'suspended')
       AND NOT EXISTS (SELECT 1 FROM subscription_segments WHERE application_id = NEW.id AND ended_at IS NULL)
       AND NOT EXISTS (SELECT 1 FROM api_products WHERE id = NEW.api_id AND state = 'retired') THEN
        INSERT INTO subscription_segments (application_id, application_name, account_id, plan_id, started_at)
        VALUES (NEW.id, NEW.name, NEW.account_id, NEW.plan_id, now());
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Segments go with their account or plan; a deleted application's rollups go with its last.
CREATE FUNCTION forget_usage_with_segment() RETURNS trigger AS $$
BEGIN
    PERFORM forget_unbilled_usage(OLD.application_id);
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER subscription_segments_forget_usage AFTER DELETE ON subscription_segments
    FOR EACH ROW EXECUTE FUNCTION forget_usage_with_segment();


-- Applications of APIs retired already stop being billed now.
UPDATE subscription_segments s SET ended_at = now()
  FROM applications a JOIN api_products p ON p.id = a.api_id
 WHERE s.application_id = a.id AND s.ended_at IS NULL AND p.state = 'retired';
