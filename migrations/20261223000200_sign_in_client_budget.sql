-- Failed sign-ins per client address in the current hour, whichever accounts they named: one
-- address spraying a common password over many accounts runs out of attempts.
CREATE TABLE sign_in_client_failures (
    client       text PRIMARY KEY,
    window_start timestamptz NOT NULL DEFAULT now(),
    failures     integer NOT NULL DEFAULT 0 CHECK (failures >= 0)
);
