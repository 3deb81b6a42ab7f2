import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Chart } from '../chart/gate.ts';
import type { Config } from '../config/config.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { type Connection, connect, type Database, loadPglite, openDatabase } from '../db/database.ts';
import { appliedMigrations, assertSchemaNotNewer, migrate } from '../db/migrate.ts';
import { loadKeys, storeChecks } from './keys.ts';

/** An opened Custos: database, keys, the gate, and the default practice. */
export interface Custos {
  readonly database: Database;
  readonly keyring: Keyring;
  readonly chart: Chart;
  readonly practiceId: string;
  /** What opening did, for `custos serve`/`migrate` to report. */
  readonly report: {
    readonly keyFileCreated: boolean;
    readonly migrationsApplied: readonly string[];
    readonly fresh: boolean;
  };
  close(): Promise<void>;
}

export interface OpenOptions {
  readonly keyFile: string;
  readonly clock?: () => Date;
}

/** Opens the configured database (embedded or PostgreSQL). */
export async function openCustos(config: Config, options: { clock?: () => Date } = {}): Promise<Custos> {
  const database = await openDatabase(config);
  return initialize(database, { keyFile: config.keyFile, ...options });
}

/** Opens an explicit connection (tests and benchmarks). */
export async function openCustosOn(conn: Connection, options: OpenOptions): Promise<Custos> {
  if (conn.engine === 'pglite') {
    await loadPglite();
  }
  return initialize(connect(conn), options);
}

/**
 * Order matters: refuse a newer schema, then check the keys, and only then write anything
 * (migrations, key check values, the default practice).
 */
async function initialize(database: Database, options: OpenOptions): Promise<Custos> {
  try {
    const db = database.db;
    await assertSchemaNotNewer(db);
    const fresh = (await appliedMigrations(db)).length === 0;
    const { keyring, created } = await loadKeys(db, { keyFile: options.keyFile, initialized: !fresh });
    const applied = await migrate(db);
    await storeChecks(db, keyring);
    const practiceId = await defaultPractice(database);
    const chart = new Chart({ db, keyring, ...(options.clock ? { clock: options.clock } : {}) });
    return {
      database,
      keyring,
      chart,
      practiceId,
      report: { keyFileCreated: created, migrationsApplied: applied, fresh },
      close: () => database.close(),
    };
  } catch (e) {
    await database.close();
    throw e;
  }
}

async function defaultPractice(database: Database): Promise<string> {
  const db = database.db;
  const found = await db
    .selectFrom('custos_meta')
    .select('value')
    .where('key', '=', 'default_practice')
    .executeTakeFirst();
  if (found) {
    return found.value;
  }
  const id = randomUUID();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('practices')
      .values({ id, name: 'Default practice', created_at: new Date() })
      .execute();
    await sql`INSERT INTO custos_meta (key, value) VALUES ('default_practice', ${id})`.execute(tx);
  });
  return id;
}
