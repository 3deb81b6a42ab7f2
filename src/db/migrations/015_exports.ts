import { type Kysely, sql } from 'kysely';

/**
 * The bulk-export registry (issue 6 item 9): one row per `custos export --all` or
 * `POST /api/v1/exports`, written in the transaction of the export's audit entry, before any
 * record is read. The stated purpose is free text and may name a patient, so it is sealed under
 * the key-encryption key; the audit entry carries only `purpose_code`. `sha256` and the counts
 * are set when the archive is complete; a row left `started` is an export that never finished.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE exports (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      requested_by uuid NOT NULL,
      purpose_code text NOT NULL
        CHECK (purpose_code IN ('migration', 'legal', 'backup-verification', 'regulatory')),
      purpose bytea NOT NULL,
      status text NOT NULL CHECK (status IN ('started', 'finished', 'failed')),
      patient_count integer NOT NULL CHECK (patient_count >= 0),
      exported_patients integer,
      exported_records integer,
      archive_bytes bigint,
      sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
      created_at timestamptz NOT NULL,
      finished_at timestamptz,
      CONSTRAINT exports_requested_by FOREIGN KEY (requested_by, practice_id) REFERENCES users (id, practice_id)
    );
    CREATE INDEX exports_created ON exports (practice_id, created_at);
    SELECT custos_isolate('exports');
  `.execute(db);
}
