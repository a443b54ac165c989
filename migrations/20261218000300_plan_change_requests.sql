-- Plan changes from the portal (issue 12): a move to a plan that needs approval waits
-- here until a provider admin decides. The application keeps its plan, and so its
-- limits and its billing, until then; deleting the requested plan drops the request.
ALTER TABLE applications
    ADD COLUMN requested_plan_id uuid,
    ADD COLUMN plan_requested_at timestamptz,
    ADD CONSTRAINT applications_requested_plan_fkey FOREIGN KEY (api_id, requested_plan_id)
        REFERENCES plans (api_id, id) ON DELETE SET NULL (requested_plan_id),
    ADD CONSTRAINT applications_requested_plan_differs CHECK (requested_plan_id IS DISTINCT FROM plan_id);
CREATE INDEX applications_plan_requests_idx ON applications (plan_requested_at) WHERE requested_plan_id IS NOT NULL;
