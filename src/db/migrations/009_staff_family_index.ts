import { type Kysely, sql } from 'kysely';

/**
 * The namesake check of the anomaly report: a staff member's family name, as a blind index only
 * (HMAC under the index key, like the patients' search terms), so that reading the chart of a
 * patient who shares it can be flagged without storing the name.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users ADD COLUMN family_index bytea`.execute(db);
}
