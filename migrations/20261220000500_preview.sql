-- Previews (issue 15): a provider opens a draft API to developers before its backend
-- exists. The draft shows in their catalog and takes subscriptions; the gateway answers
-- its calls from mocks only (a draft is never routed to an upstream).

-- One row per previewed draft: open to every developer, or only to the accounts below.
CREATE TABLE api_previews (
    api_id     uuid PRIMARY KEY REFERENCES api_products(id) ON DELETE CASCADE,
    everyone   boolean NOT NULL,
    opened_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_preview_accounts (
    api_id     uuid NOT NULL REFERENCES api_previews(api_id) ON DELETE CASCADE,
    account_id uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    PRIMARY KEY (api_id, account_id)
);

-- Whether developers of `account` (NULL: a visitor) may see the API and subscribe to it:
-- published and deprecated APIs, and drafts previewed to everyone or to that account.
-- One definition for the catalog, the API page, the plan choices and the subscription.
CREATE FUNCTION api_open_to(api uuid, state api_state, account uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT state IN ('published', 'deprecated')
        OR (state = 'draft' AND EXISTS (
            SELECT 1 FROM api_previews p WHERE p.api_id = api
               AND (p.everyone OR EXISTS (
                   SELECT 1 FROM api_preview_accounts pa WHERE pa.api_id = api AND pa.account_id = account))))
$$;
