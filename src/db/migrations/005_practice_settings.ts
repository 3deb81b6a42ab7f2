import { type Kysely, sql } from 'kysely';

/** Per-practice settings (session timeouts today); absent keys fall back to the defaults. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE practices ADD COLUMN settings jsonb NOT NULL DEFAULT '{}'::jsonb`.execute(db);
}
