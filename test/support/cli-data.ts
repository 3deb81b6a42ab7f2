import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { inject } from 'vitest';
import { freshDatabase, type TestDatabase } from './db.ts';

/**
 * An environment for running the real `custos` command against a fresh database of the current
 * engine: a data folder with a ready PGlite cluster (initdb in wasm is slow), or a fresh
 * PostgreSQL database plus a data folder for the key file.
 */
export interface CliData {
  readonly env: Record<string, string>;
  readonly dataDir: string;
  readonly testDb: TestDatabase | undefined;
  cleanup(): Promise<void>;
}

export async function cliData(): Promise<CliData> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-cli-'));
  const testDb = await freshDatabase();
  if (testDb.engine === 'pglite') {
    await testDb.drop();
    const pglite = await PGlite.create(path.join(dataDir, 'pg'), {
      loadDataDir: new Blob([fs.readFileSync(inject('pgliteTemplate'))]),
    });
    await pglite.close();
    return {
      env: { CUSTOS_DATA_DIR: dataDir },
      dataDir,
      testDb: undefined,
      cleanup: async () => fs.rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  return {
    env: { CUSTOS_DATA_DIR: dataDir, DATABASE_URL: testDb.url ?? '' },
    dataDir,
    testDb,
    async cleanup() {
      await testDb.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
