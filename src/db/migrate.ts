import { type Kysely, type Migration, Migrator, sql } from 'kysely';
import { CustosError } from '../errors.ts';
import * as m001 from './migrations/001_initial.ts';
import * as m002 from './migrations/002_audit_sealing.ts';
import * as m003 from './migrations/003_audit_report_indexes.ts';
import * as m004 from './migrations/004_identity.ts';
import * as m005 from './migrations/005_practice_settings.ts';
import * as m006 from './migrations/006_access_control.ts';
import * as m007 from './migrations/007_access_reviews.ts';
import * as m008 from './migrations/008_row_level_security.ts';
import * as m009 from './migrations/009_staff_family_index.ts';
import * as m010 from './migrations/010_notes_lifecycle.ts';
import * as m011 from './migrations/011_download_tokens.ts';
import * as m012 from './migrations/012_scheduling.ts';
import * as m013 from './migrations/013_messages.ts';
import * as m014 from './migrations/014_integrations.ts';
import * as m015 from './migrations/015_exports.ts';
import * as m016 from './migrations/016_patient_merges.ts';
import * as m017 from './migrations/017_integration_approval.ts';
import type { CoreDb } from './schema.ts';

/** Every migration this version of Custos knows, in order. One set for both engines. */
export const migrations: Readonly<Record<string, Migration>> = {
  '001_initial': m001,
  '002_audit_sealing': m002,
  '003_audit_report_indexes': m003,
  '004_identity': m004,
  '005_practice_settings': m005,
  '006_access_control': m006,
  '007_access_reviews': m007,
  '008_row_level_security': m008,
  '009_staff_family_index': m009,
  '010_notes_lifecycle': m010,
  '011_download_tokens': m011,
  '012_scheduling': m012,
  '013_messages': m013,
  '014_integrations': m014,
  '015_exports': m015,
  '016_patient_merges': m016,
  '017_integration_approval': m017,
};

const TABLE = 'custos_migrations';

/** Names of migrations applied to this database (empty for a fresh one). */
export async function appliedMigrations(db: Kysely<CoreDb>): Promise<string[]> {
  const exists = await sql<{ t: string | null }>`SELECT to_regclass(${TABLE}) AS t`.execute(db);
  if (!exists.rows[0]?.t) {
    return [];
  }
  const rows = await sql<{ name: string }>`SELECT name FROM custos_migrations ORDER BY name`.execute(db);
  return rows.rows.map((r) => r.name);
}

/**
 * Refuses a database whose schema is newer than this code: running old code on it could
 * misread or corrupt data. Called before anything is written.
 */
export async function assertSchemaNotNewer(db: Kysely<CoreDb>): Promise<void> {
  const unknown = (await appliedMigrations(db)).filter((name) => !(name in migrations));
  if (unknown.length > 0) {
    throw new CustosError(
      'CUSTOS_ERR_SCHEMA_TOO_NEW',
      `the database schema is newer than this version of Custos (it has migration ${unknown[0]}); upgrade Custos before using this database`,
    );
  }
}

/** Applies pending migrations; returns the names applied. */
export async function migrate(db: Kysely<CoreDb>): Promise<string[]> {
  await assertSchemaNotNewer(db);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableName: TABLE,
    migrationLockTableName: `${TABLE}_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw error;
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
