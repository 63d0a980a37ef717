-- API tokens of operators and customers: stored as SHA-256, shown once.
CREATE TABLE api_tokens (
    id              uuid PRIMARY KEY,
    owner_kind      text NOT NULL CHECK (owner_kind IN ('operator', 'customer')),
    owner_id        uuid NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash      text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX api_tokens_owner_idx ON api_tokens (owner_kind, owner_id, created_at DESC);
