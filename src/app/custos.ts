import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import { Chart } from '../chart/gate.ts';
import type { Config } from '../config/config.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { type Connection, connect, type Database, loadPglite, openDatabase } from '../db/database.ts';
import { appliedMigrations, assertSchemaNotNewer, migrate } from '../db/migrate.ts';
import { withPractice } from '../db/practice-scope.ts';
import type { CoreDb } from '../db/schema.ts';
import { BlobStore } from '../files/blob-store.ts';
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
  /** Folder of the encrypted file store (default: none; `openCustos` uses `$CUSTOS_DATA_DIR/blobs`). */
  readonly blobDir?: string;
}

/** Opens the configured database (embedded or PostgreSQL). */
export async function openCustos(config: Config, options: { clock?: () => Date } = {}): Promise<Custos> {
  const database = await openDatabase(config);
  return initialize(database, {
    keyFile: config.keyFile,
    blobDir: path.join(config.dataDir, 'blobs'),
    ...options,
  });
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
 * (migrations, key check values, the default practice). All of that runs as the owner; what is
 * returned runs as the application role, bound to the default practice (see `Database`).
 */
async function initialize(database: Database, options: OpenOptions): Promise<Custos> {
  try {
    const owner = database.owner;
    await assertSchemaNotNewer(owner);
    const fresh = (await appliedMigrations(owner)).length === 0;
    const { keyring, created } = await loadKeys(owner, { keyFile: options.keyFile, initialized: !fresh });
    const applied = await migrate(owner);
    await storeChecks(owner, keyring);
    const practiceId = await defaultPractice(owner);
    const bound = database.forPractice(practiceId);
    const blobs = options.blobDir ? await BlobStore.open(options.blobDir) : undefined;
    const chart = new Chart({
      db: bound.db,
      keyring,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(blobs ? { blobs } : {}),
    });
    return {
      database: bound,
      keyring,
      chart,
      practiceId,
      report: { keyFileCreated: created, migrationsApplied: applied, fresh },
      close: () => bound.close(),
    };
  } catch (e) {
    await database.close();
    throw e;
  }
}

async function defaultPractice(db: Kysely<CoreDb>): Promise<string> {
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
    // The owner is bound by the practices policy too, unless it is a superuser (FORCE, migration 008).
    await withPractice(tx, id);
    await tx
      .insertInto('practices')
      .values({ id, name: 'Default practice', created_at: new Date() })
      .execute();
    await sql`INSERT INTO custos_meta (key, value) VALUES ('default_practice', ${id})`.execute(tx);
  });
  return id;
}
