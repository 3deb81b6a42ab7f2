import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { freshDatabase, skipReason, type TestDatabase } from '../../test/support/db.ts';
import { identity, system } from '../../test/support/fixtures.ts';
import { Keyring, writeKeyFile } from '../crypto/keyring.ts';
import { connect } from '../db/database.ts';
import { isCustosError } from '../errors.ts';
import { openCustosOn } from './custos.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] startup.int.test.ts skipped: ${skip}`);
}

describe.skipIf(skip)('starting up', () => {
  let testDb: TestDatabase | undefined;
  const dirs: string[] = [];
  const keyPath = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-keys-'));
    dirs.push(d);
    return path.join(d, 'custos.keys');
  };
  afterEach(async () => {
    await testDb?.drop();
    for (const d of dirs.splice(0)) {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });

  /** Every row of every table, for "nothing was written". */
  async function snapshot(db: TestDatabase) {
    const database = connect(db.connection());
    try {
      const tables = await sql<{
        t: string;
      }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`.execute(database.owner);
      const out: Record<string, unknown> = {};
      for (const { t } of tables.rows) {
        out[t] = (await sql`SELECT * FROM ${sql.table(t)} ORDER BY 1`.execute(database.owner)).rows;
      }
      return out;
    } finally {
      await database.close();
    }
  }

  it('creates the keys on first start, and opens again with the same key file', async () => {
    testDb = await freshDatabase();
    const keyFile = keyPath();
    const first = await openCustosOn(testDb.connection(), { keyFile });
    expect(first.report).toEqual({
      keyFileCreated: true,
      migrationsApplied: [
        '001_initial',
        '002_audit_sealing',
        '003_audit_report_indexes',
        '004_identity',
        '005_practice_settings',
        '006_access_control',
        '007_access_reviews',
        '008_row_level_security',
        '009_staff_family_index',
        '010_notes_lifecycle',
        '011_download_tokens',
        '012_scheduling',
        '013_messages',
        '014_integrations',
        '015_exports',
        '016_patient_merges',
        '017_integration_approval',
      ],
      fresh: true,
    });
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const { id } = await first.chart.createPatient(system(first.practiceId), identity());
    await first.close();
    const again = await openCustosOn(testDb.connection(), { keyFile });
    expect(again.report).toEqual({ keyFileCreated: false, migrationsApplied: [], fresh: false });
    expect(again.practiceId).toBe(first.practiceId);
    expect((await again.chart.readPatient(system(again.practiceId), id)).identity.name.family).toBe(
      'Synthetica',
    );
    await again.close();
  });

  it('refuses a key file that does not belong to the database, and writes nothing', async () => {
    testDb = await freshDatabase();
    const first = await openCustosOn(testDb.connection(), { keyFile: keyPath() });
    await first.chart.createPatient(system(first.practiceId), identity());
    await first.close();
    const before = await snapshot(testDb);
    const wrong = keyPath();
    writeKeyFile(wrong, Keyring.generate());
    const e = await openCustosOn(testDb.connection(), { keyFile: wrong }).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_KEY_MISMATCH')).toBe(true);
    expect((e as Error).message).toBe(
      `the key file ${wrong} does not belong to this database (kek key check failed); nothing was written`,
    );
    expect(await snapshot(testDb)).toEqual(before);
  });

  it('refuses to start without the key file of an initialized database, and creates none', async () => {
    testDb = await freshDatabase();
    const first = await openCustosOn(testDb.connection(), { keyFile: keyPath() });
    await first.close();
    const before = await snapshot(testDb);
    const missing = keyPath();
    const e = await openCustosOn(testDb.connection(), { keyFile: missing }).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_KEY_MISSING')).toBe(true);
    expect(fs.existsSync(missing)).toBe(false);
    expect(await snapshot(testDb)).toEqual(before);
  });

  it('refuses a database whose schema is newer than the code', async () => {
    testDb = await freshDatabase();
    const keyFile = keyPath();
    const first = await openCustosOn(testDb.connection(), { keyFile });
    await sql`INSERT INTO custos_migrations (name, timestamp) VALUES ('999_from_the_future', now())`.execute(
      first.database.owner,
    );
    await first.close();
    const before = await snapshot(testDb);
    const e = await openCustosOn(testDb.connection(), { keyFile }).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_SCHEMA_TOO_NEW')).toBe(true);
    expect((e as Error).message).toContain('999_from_the_future');
    expect(await snapshot(testDb)).toEqual(before);
  });
});
