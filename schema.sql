-- syncd schema: applied idempotently by `syncd migrate` (and at `syncd serve` start-up).
-- The event log is the source of truth; notes and projects are its projection, kept in
-- the same transaction as every append and rebuildable from the log (`syncd rebuild`).

CREATE TABLE IF NOT EXISTS users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,          -- stored lowercased
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    head          bigint NOT NULL DEFAULT 0,      -- last seq of this user's log; its row lock orders appends
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS devices (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    platform     text NOT NULL DEFAULT '',
    acked        bigint NOT NULL DEFAULT 0,       -- highest consumed client_seq
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
-- The canonical clock of the device's last consumed op: its next ops are canonicalised
-- above it, and the server clock starts above the greatest of them.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS last_hlc text;
CREATE INDEX IF NOT EXISTS devices_user ON devices (user_id);

CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash bytea PRIMARY KEY,                 -- sha256 of the token; the token itself is never stored
    device_id  uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz                         -- set on rotation; a second use revokes the device
);
CREATE INDEX IF NOT EXISTS refresh_tokens_device ON refresh_tokens (device_id);

-- One id per op, shared by every member's copy of its event.
CREATE SEQUENCE IF NOT EXISTS op_ids;

-- CRDT bytes (a text op's Yjs update, a put's document state), stored once per op.
CREATE TABLE IF NOT EXISTS payloads (
    op_id bigint PRIMARY KEY,
    data  bytea NOT NULL
);

-- The per-user append-only log. seq is 1, 2, 3, … per user, in commit order.
CREATE TABLE IF NOT EXISTS events (
    user_id     uuid NOT NULL,
    seq         bigint NOT NULL,
    op_id       bigint NOT NULL,
    entity      text NOT NULL,
    entity_id   uuid NOT NULL,
    kind        text NOT NULL,
    fields      jsonb,
    has_payload boolean NOT NULL DEFAULT false,
    hlc         text NOT NULL,
    device_id   uuid,
    author_id   uuid NOT NULL,
    client_seq  bigint,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX IF NOT EXISTS events_entity ON events (entity_id, op_id);

CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Account deletion is the one sanctioned erase; it sets this for its own transaction.
    IF current_setting('syncd.erase', true) = 'on' THEN
        -- DELETE proceeds with OLD; UPDATE (pseudonymising a deleted author) with NEW.
        IF TG_OP = 'UPDATE' THEN RETURN NEW; END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

CREATE TABLE IF NOT EXISTS projects (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL,
    title       text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    word_goal   integer NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'active',
    deleted     boolean NOT NULL DEFAULT false,
    word_count  integer NOT NULL DEFAULT 0,
    milestones  jsonb NOT NULL DEFAULT '{}',
    clocks      jsonb NOT NULL DEFAULT '{}',
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS projects_owner ON projects (owner_id);

CREATE TABLE IF NOT EXISTS members (
    project_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    role       text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);

CREATE TABLE IF NOT EXISTS notes (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL,
    project_id  uuid,
    title       text NOT NULL DEFAULT '',
    tags        jsonb NOT NULL DEFAULT '[]',
    pinned      boolean NOT NULL DEFAULT false,
    favorite    boolean NOT NULL DEFAULT false,
    deleted     boolean NOT NULL DEFAULT false,
    body        text NOT NULL DEFAULT '',
    body_state  bytea,
    word_count  integer NOT NULL DEFAULT 0,
    clocks      jsonb NOT NULL DEFAULT '{}',
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Ordered by recency too, so a note list reads its page in index order (queries.list_rows);
-- they replace the plain (owner_id) and (project_id) indexes of earlier versions.
DROP INDEX IF EXISTS notes_owner;
DROP INDEX IF EXISTS notes_project;
DROP INDEX IF EXISTS notes_project_updated;
CREATE INDEX IF NOT EXISTS notes_owner_updated ON notes (owner_id, updated_at DESC, id DESC);
-- Partial: most notes are in no project, and each would cost an index entry on every write.
-- The owner comes second: a list reads the notes of the user's projects that others own
-- as two ranges around the user's id (queries.list_query), so the common case, a project
-- holding only its owner's notes, costs no heap visit at all.
DROP INDEX IF EXISTS notes_in_project;
CREATE INDEX IF NOT EXISTS notes_project_owner ON notes
    (project_id, owner_id, updated_at DESC, id DESC) WHERE project_id IS NOT NULL;

-- Full-text search over notes (GET /v1/search): title weight A, tags B, body C. The 'simple'
-- configuration (no stemming, no stop words) suits notes in any language and prefix search.
-- Only a body's first 100 000 characters are indexed: a tsvector is capped at 1 MB, and a
-- write must never fail because its note grew too large to index. Notes are plain text:
-- `<` and `>` become spaces, or the parser would take `<b>` for markup and skip words.
-- Two reserved lexemes, `~o<owner id>` and `~p<project id>` (no word the parser makes holds
-- a `~`), let a search AND its words with the caller's scope inside the GIN index instead
-- of matching every user's notes and filtering after. A column from before them is rebuilt.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'notes'
                 AND column_name = 'search' AND generation_expression NOT LIKE '%~o%') THEN
        ALTER TABLE notes DROP COLUMN search;
    END IF;
END $$;
-- The body's part of the vector (weight C) is kept in a column of its own, made only
-- when a write sets the body: a title, tags or move write then joins it with the other
-- parts instead of parsing the whole body again (most of such an UPDATE's time on a note
-- of a few sentences). An INSERT gets it from a trigger; an UPDATE that sets the body
-- sets it too (store.py: the notes' one UPDATE path). No BEFORE UPDATE trigger: with one
-- on the table PostgreSQL computes generated columns on every UPDATE, and a pinned toggle
-- on a long chapter would write its whole vector again. The expression names `body` too,
-- parsed only should body_words be missing.
CREATE OR REPLACE FUNCTION note_body_words(body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', translate(left(body, 100000), '<>', '  ')), 'C')
$$;
CREATE OR REPLACE FUNCTION notes_body_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.body_words := note_body_words(NEW.body);
    RETURN NEW;
END $$;
ALTER TABLE notes ADD COLUMN IF NOT EXISTS body_words tsvector;
CREATE OR REPLACE TRIGGER notes_body_words BEFORE INSERT ON notes
    FOR EACH ROW EXECUTE FUNCTION notes_body_words();
-- A vector that parses the body itself is from before body_words: fill body_words, and
-- make the vector again from it.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'notes'
                     AND column_name = 'search'
                     AND generation_expression LIKE '%note_body_words(body)%') THEN
        UPDATE notes SET body_words = note_body_words(body);
        ALTER TABLE notes DROP COLUMN IF EXISTS search;
    END IF;
END $$;
ALTER TABLE notes ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', translate(title, '<>', '  ')), 'A')
    || setweight(to_tsvector('simple', tags), 'B')
    || coalesce(body_words, note_body_words(body))
    || array_to_tsvector(ARRAY['~o' || owner_id::text, '~p' || coalesce(project_id::text, '')])
    ) STORED;
CREATE INDEX IF NOT EXISTS notes_search ON notes USING gin (search);
-- Kept in the row (MAIN), not in TOAST: a tsvector barely compresses, and a search reads
-- it for every match (the title test and ts_rank), each a TOAST index lookup otherwise.
-- Rows written before this keep their TOASTed vector until their next write.
ALTER TABLE notes ALTER COLUMN search SET STORAGE MAIN;

-- Snippets are made in Python now (syncd/snippets.py).
DROP FUNCTION IF EXISTS snippet_window(text, text, integer, integer);

-- Conflicts made visible (PROTOCOL.md `base`). `writers` holds, per field, the op id whose
-- value is current; a write from a device that had not seen that op (its seq in the
-- author's log is past the op's `base`) is recorded here for the author to settle.
-- A database from before this column needs one `syncd rebuild` to fill `writers`.
ALTER TABLE notes ADD COLUMN IF NOT EXISTS writers jsonb NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN IF NOT EXISTS writers jsonb NOT NULL DEFAULT '{}';
CREATE TABLE IF NOT EXISTS conflicts (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL,                   -- the author of the write, who settles it
    entity      text NOT NULL,
    entity_id   uuid NOT NULL,
    field       text NOT NULL,
    mine        jsonb NOT NULL,                  -- {value, hlc, device_id, user_id}
    theirs      jsonb NOT NULL,                  -- {value, hlc, device_id, user_id, seq}
    winner      text NOT NULL CHECK (winner IN ('mine', 'theirs')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolution  jsonb
);
CREATE INDEX IF NOT EXISTS conflicts_user ON conflicts (user_id, created_at);

-- Writing stats (syncd/words.py): the net words each author's text ops wrote, per note and
-- quarter hour of the ops' HLC wall time, kept in the ops' transaction. Derived from the
-- log like notes and projects (`syncd rebuild` recomputes it, `--verify` compares it);
-- `syncd migrate` fills it from the log when it creates it.
CREATE TABLE IF NOT EXISTS words_written (
    user_id uuid NOT NULL,
    note_id uuid NOT NULL,
    quarter timestamptz NOT NULL,
    words   integer NOT NULL,
    PRIMARY KEY (user_id, note_id, quarter)
);
CREATE INDEX IF NOT EXISTS words_written_note ON words_written (note_id);  -- account deletion
-- Stats list a user's milestones; most of a long log is text, so a scan of it was slow.
CREATE INDEX IF NOT EXISTS events_milestones ON events (user_id, seq) WHERE kind = 'milestone';

-- An app's own values (syncd/fields.py): a note's or project's `meta` map, one LWW
-- register per key (clocks `meta.<key>`), cleared keys left out; a project's deadline.
ALTER TABLE notes ADD COLUMN IF NOT EXISTS meta jsonb NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN IF NOT EXISTS meta jsonb NOT NULL DEFAULT '{}';
ALTER TABLE projects ADD COLUMN IF NOT EXISTS deadline date;
-- `GET /v1/notes?meta_key=k` and `?meta.k=v`: the key's presence (?) and containment (@>).
-- Partial: a note without app values (most notes) would cost an entry on every write, since
-- no note write is a HOT update (updated_at is indexed); both filters imply the predicate
-- and also say it (api/resource.py), so the planner can use the index.
DROP INDEX IF EXISTS notes_meta;
CREATE INDEX IF NOT EXISTS notes_meta_set ON notes USING gin (meta) WHERE meta <> '{}';

-- A user's settings: one row per user, one LWW register per key (clocks `{key: hlc}`),
-- cleared keys left out of `fields`. Projected from the `settings` events of the user's
-- log like notes and projects, and rebuilt with them.
CREATE TABLE IF NOT EXISTS settings (
    user_id    uuid PRIMARY KEY,
    fields     jsonb NOT NULL DEFAULT '{}',
    clocks     jsonb NOT NULL DEFAULT '{}',
    version    bigint NOT NULL DEFAULT 0,
    writers    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Sign-in through an OpenID provider (syncd/signin.py). An identity, once linked, always
-- signs in to its account.
CREATE TABLE IF NOT EXISTS oidc_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX IF NOT EXISTS oidc_identities_user ON oidc_identities (user_id);

-- A sign-in under way, from its start to the provider's answer (minutes at most).
CREATE TABLE IF NOT EXISTS oidc_attempts (
    state_hash   bytea PRIMARY KEY,              -- sha256 of the state sent to the provider
    browser_hash bytea NOT NULL,                 -- sha256 of the cookie of the browser that started it
    nonce        text NOT NULL,
    verifier     text NOT NULL,                  -- the PKCE code verifier
    device_name  text NOT NULL,
    platform     text NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS oidc_attempts_expiry ON oidc_attempts (expires_at);

-- A finished sign-in waiting for the app to exchange its one-time code for tokens.
CREATE TABLE IF NOT EXISTS oidc_handoffs (
    code_hash   bytea PRIMARY KEY,               -- sha256 of the code; the code itself is never stored
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name text NOT NULL,
    platform    text NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Accounts people can keep (syncd/accounts.py). An address is verified when its owner
-- follows a mailed link; accounts from before this column are unverified until they do.
ALTER TABLE users ADD COLUMN IF NOT EXISTS email_verified_at timestamptz;
-- Where a device was last seen from (its login or latest token refresh).
ALTER TABLE devices ADD COLUMN IF NOT EXISTS last_ip text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS user_agent text;

-- Single-use tokens sent by mail: a password reset, or the verification of an address
-- (`email`: the address it proves, the account's new one for a change). Only their hash
-- is kept; a token is spent by setting used_at.
CREATE TABLE IF NOT EXISTS account_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('reset', 'verify')),
    email      text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX IF NOT EXISTS account_tokens_user ON account_tokens (user_id);

-- Mail to send (syncd/mail.py), written in the transaction that makes its reason (a token)
-- and sent by a worker on any node, which claims a row with FOR UPDATE SKIP LOCKED, sends
-- it and sets sent_at in the same transaction.
CREATE TABLE IF NOT EXISTS outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    recipient  text NOT NULL,
    subject    text NOT NULL,
    body       text NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    next_at    timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    failed_at  timestamptz,                    -- given up after the last attempt
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_at) WHERE sent_at IS NULL AND failed_at IS NULL;
