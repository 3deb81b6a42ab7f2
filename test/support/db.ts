import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { inject } from 'vitest';
import { type Custos, openCustosOn } from '../../src/app/custos.ts';
import type { Connection } from '../../src/db/database.ts';

export type TestEngine = 'pglite' | 'postgres';

/** Which engine this run of an `*.int.test.ts` file is for. */
export const engine = (): TestEngine =>
  process.env.CUSTOS_TEST_ENGINE === 'postgres' ? 'postgres' : 'pglite';

/** Why the current engine cannot run (PostgreSQL unreachable), or undefined. */
export function skipReason(): string | undefined {
  if (engine() !== 'postgres') {
    return undefined;
  }
  const pgInfo = inject('postgres');
  return 'skip' in pgInfo ? pgInfo.skip : undefined;
}

/** A fresh, empty database of the current engine, dropped by `drop()`. */
export interface TestDatabase {
  readonly engine: TestEngine;
  /** PostgreSQL URL of this database (postgres engine only). */
  readonly url?: string;
  /** Folder holding the PGlite files (pglite engine with `onDisk`). */
  readonly pgliteDir?: string;
  connection(): Connection;
  drop(): Promise<void>;
}

export async function freshDatabase(options: { onDisk?: boolean } = {}): Promise<TestDatabase> {
  if (engine() === 'postgres') {
    const pgInfo = inject('postgres');
    if ('skip' in pgInfo) {
      throw new Error(pgInfo.skip);
    }
    const name = `custos_test_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: pgInfo.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = withDatabase(pgInfo.url, name);
    return {
      engine: 'postgres',
      url,
      connection: () => ({ engine: 'postgres', url }),
      async drop() {
        const c = new pg.Client({ connectionString: pgInfo.url });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const blob = new Blob([fs.readFileSync(inject('pgliteTemplate'))]);
  const dir = options.onDisk ? fs.mkdtempSync(path.join(os.tmpdir(), 'custos-pglite-')) : undefined;
  const pglite = await PGlite.create(dir ? path.join(dir, 'pg') : undefined, { loadDataDir: blob });
  let closed = false;
  return {
    engine: 'pglite',
    ...(dir ? { pgliteDir: dir } : {}),
    connection: () => ({ engine: 'pglite', pglite }),
    async drop() {
      if (!closed) {
        closed = true;
        await pglite.close();
      }
      if (dir) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A Custos on a fresh database with its own key file; `cleanup()` closes and drops both. */
export interface TestCustos extends Custos {
  readonly testDb: TestDatabase;
  readonly keyFile: string;
  cleanup(): Promise<void>;
}

export async function openTestCustos(
  options: { clock?: () => Date; onDisk?: boolean } = {},
): Promise<TestCustos> {
  const testDb = await freshDatabase(options.onDisk ? { onDisk: true } : {});
  const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-keys-'));
  const keyFile = path.join(keyDir, 'custos.keys');
  const custos = await openCustosOn(testDb.connection(), {
    keyFile,
    blobDir: path.join(keyDir, 'blobs'),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  return Object.assign(Object.create(null) as object, custos, {
    testDb,
    keyFile,
    async cleanup() {
      await custos.close();
      await testDb.drop();
      fs.rmSync(keyDir, { recursive: true, force: true });
    },
  }) as TestCustos;
}
