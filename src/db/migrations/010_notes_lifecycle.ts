import { type Kysely, sql } from 'kysely';

/**
 * Clinical notes: draft -> signed (by the author, after a recent re-authentication) -> amended
 * (a new signed note linked to the original, which stays readable). Patients' amendment requests
 * (ONC 170.315(d)(4)): recorded, then accepted (linked to the amendment) or denied (with the
 * reason kept beside the request). Request texts and reasons are sealed with the patient's key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE records ADD COLUMN signed_at timestamptz;
    ALTER TABLE records ADD COLUMN signed_by text;
    ALTER TABLE records ADD COLUMN amends uuid REFERENCES records(id);
    ALTER TABLE records ADD COLUMN amended_by uuid REFERENCES records(id);
    -- Notes that existed before signing was introduced were final: count them as signed.
    UPDATE records SET signed_at = created_at, signed_by = author_id WHERE kind = 'note';

    CREATE TABLE amendment_requests (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      record_id uuid NOT NULL REFERENCES records(id),
      pseudonym text NOT NULL,
      request bytea NOT NULL,
      status text NOT NULL CHECK (status IN ('requested', 'accepted', 'denied')),
      decision bytea,
      amendment_id uuid REFERENCES records(id),
      requested_by text NOT NULL,
      requested_at timestamptz NOT NULL,
      decided_by text,
      decided_at timestamptz
    );
    CREATE INDEX amendment_requests_pseudonym ON amendment_requests (pseudonym, requested_at);
    SELECT custos_isolate('amendment_requests');
  `.execute(db);
}
