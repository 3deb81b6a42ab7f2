import { type Kysely, sql } from 'kysely';

/**
 * Access reviews (issue 5 item 8; HIPAA 45 CFR 164.308(a)(4)(ii)(C)): the privacy officer's
 * decision on each account, certified or revoked, with a short comment (no health data). Rows
 * are never updated: the latest row per user is the current review.
 *
 * The partial index serves the dormant-account rule: an account that an administrator enables
 * again or resets counts from that moment, which the audit trail records (`user-enabled`,
 * `user-reset`); without the index the hourly check would scan the whole trail.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE access_reviews (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      user_id uuid NOT NULL REFERENCES users(id),
      reviewer_id text NOT NULL,
      decision text NOT NULL CHECK (decision IN ('certified', 'revoked')),
      comment text CHECK (char_length(comment) <= 200),
      reviewed_at timestamptz NOT NULL
    );
    CREATE INDEX access_reviews_user ON access_reviews (user_id, reviewed_at);

    CREATE INDEX audit_entries_account_reactivated ON audit_entries (resource_id, at)
      WHERE resource_type = 'user' AND action IN ('user-enabled', 'user-reset') AND outcome = 'success';
  `.execute(db);
}
