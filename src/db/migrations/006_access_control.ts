import { type Kysely, sql } from 'kysely';

/**
 * Access control (issue 5): restricted patients, record categories and release, psychotherapy
 * note shares, consent directives (sealed), break-the-glass grants with their review, and
 * care-team membership history (who ended it).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE patients ADD COLUMN restricted boolean NOT NULL DEFAULT false;

    -- Consent categories a record falls in (mental-health, substance-use, sexual-health), on the
    -- pseudonymous side like kind and sensitivity; never a code or a diagnosis.
    ALTER TABLE records ADD COLUMN categories text[] NOT NULL DEFAULT '{}';
    ALTER TABLE records ADD COLUMN released_at timestamptz;

    ALTER TABLE care_team ADD COLUMN ended_by text;
    CREATE INDEX care_team_user ON care_team (user_id);

    CREATE TABLE record_shares (
      record_id uuid NOT NULL REFERENCES records(id),
      practice_id uuid NOT NULL REFERENCES practices(id),
      user_id text NOT NULL,
      shared_by text NOT NULL,
      created_at timestamptz NOT NULL,
      PRIMARY KEY (record_id, user_id)
    );

    -- One row per patient with directives; the directives themselves are sealed (what a patient
    -- withholds says something about them).
    CREATE TABLE patient_consents (
      patient_id uuid PRIMARY KEY REFERENCES patients(id),
      practice_id uuid NOT NULL REFERENCES practices(id),
      version integer NOT NULL,
      body bytea NOT NULL,
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL
    );

    CREATE TABLE break_glass_grants (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      user_id text NOT NULL,
      patient_id uuid NOT NULL REFERENCES patients(id),
      reason_category text NOT NULL,
      -- The free-text reason, sealed under the key-encryption key.
      reason bytea NOT NULL,
      starts_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      ended_at timestamptz,
      disposition text,
      review_comment bytea,
      reviewed_by text,
      reviewed_at timestamptz
    );
    CREATE INDEX break_glass_active ON break_glass_grants (patient_id, user_id, expires_at);
    CREATE INDEX break_glass_user ON break_glass_grants (user_id, expires_at);
    CREATE INDEX break_glass_unreviewed ON break_glass_grants (practice_id, starts_at) WHERE reviewed_at IS NULL;
  `.execute(db);
}
