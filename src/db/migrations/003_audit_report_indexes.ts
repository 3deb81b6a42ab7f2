import { type Kysely, sql } from 'kysely';

/**
 * Indexes for audit reports: searches name the patients they returned in `detail.pseudonyms`
 * (GIN, jsonb_path_ops, for the containment query of the patient access report), and time
 * windows for the login, anomaly and export reports.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE INDEX audit_entries_detail ON audit_entries USING gin (detail jsonb_path_ops);
    CREATE INDEX audit_entries_at ON audit_entries (at);
  `.execute(db);
}
