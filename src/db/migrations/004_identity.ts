import { type Kysely, sql } from 'kysely';

/**
 * Staff accounts, sessions and login defense (HIPAA 45 CFR 164.312(a)(2)(i), (a)(2)(iii), (d);
 * NIST SP 800-63B AAL2). Shared state lives here so that several servers agree on it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE users (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      username text NOT NULL,
      roles text[] NOT NULL,
      status text NOT NULL,
      password_hash text,
      password_changed_at timestamptz,
      totp_secret bytea,
      totp_last_step bigint,
      recovery_hashes text[] NOT NULL DEFAULT '{}',
      failed_logins integer NOT NULL DEFAULT 0,
      lockouts integer NOT NULL DEFAULT 0,
      locked_until timestamptz,
      last_login_at timestamptz,
      created_at timestamptz NOT NULL,
      UNIQUE (practice_id, username)
    );

    CREATE TABLE enrollments (
      token_hash bytea PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users(id),
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      created_at timestamptz NOT NULL
    );

    CREATE TABLE sessions (
      id_hash bytea PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users(id),
      practice_id uuid NOT NULL REFERENCES practices(id),
      kind text NOT NULL,
      created_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL,
      absolute_expires_at timestamptz NOT NULL,
      reauth_at timestamptz,
      client_address text,
      user_agent_hash text,
      ended_at timestamptz,
      end_reason text
    );
    CREATE INDEX sessions_user ON sessions (user_id) WHERE ended_at IS NULL;

    CREATE TABLE guard_events (
      address text NOT NULL,
      kind text NOT NULL,
      subject_hash text,
      at timestamptz NOT NULL
    );
    CREATE INDEX guard_events_lookup ON guard_events (address, kind, at);

    CREATE TABLE ip_blocks (
      address text NOT NULL,
      reason text NOT NULL,
      blocked_at timestamptz NOT NULL,
      blocked_until timestamptz NOT NULL,
      lifted_at timestamptz,
      lifted_by text
    );
    CREATE INDEX ip_blocks_active ON ip_blocks (address, blocked_until) WHERE lifted_at IS NULL;

    CREATE TABLE webauthn_credentials (
      id text PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users(id),
      public_key bytea NOT NULL,
      counter bigint NOT NULL,
      transports text[] NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL
    );
  `.execute(db);
}
