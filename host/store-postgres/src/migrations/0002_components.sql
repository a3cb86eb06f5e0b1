-- Plugin components (WebAssembly), by the hex SHA-256 of their bytes: every host
-- sharing the database loads the components the registry's records name from here.
CREATE TABLE tally_components (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    component bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
