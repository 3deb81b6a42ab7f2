import { type Kysely, sql } from 'kysely';

/**
 * Single-use download tokens for files (issue 6, item 4): a URL an `<img>` or a viewer can load
 * without a JSON call, valid 60 seconds, for one session. Only the token's SHA-256 is stored, so
 * a database dump cannot be replayed as a download (as for sessions). The state lives here, not
 * in a server's memory, so any of several servers behind a load balancer can redeem a token
 * another one issued; the conditional UPDATE that redeems it makes "once" hold across them.
 * No health data: a record id, who, which session, when.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE download_tokens (
      token_hash bytea PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      record_id uuid NOT NULL,
      actor_id text NOT NULL,
      session_id text NOT NULL,
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      CONSTRAINT download_tokens_record FOREIGN KEY (record_id, practice_id)
        REFERENCES records (id, practice_id)
    );
    CREATE INDEX download_tokens_expires ON download_tokens (practice_id, expires_at);
    SELECT custos_isolate('download_tokens');
  `.execute(db);
}
