import fs from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { CustosError } from '../errors.ts';
import type { CoreDb } from './schema.ts';

// int8 (audit sequence numbers, counts) stays a string: JavaScript numbers lose precision past 2^53.
// timestamptz is parsed into Date by pg's default parser.

export type Engine = 'pglite' | 'postgres';

/** An open database: the Kysely handle, which engine it is, and how to close it. */
export interface Database {
  readonly db: Kysely<CoreDb>;
  readonly engine: Engine;
  close(): Promise<void>;
}

export type Connection =
  | { readonly engine: 'postgres'; readonly url: string; readonly poolSize?: number }
  | {
      readonly engine: 'pglite';
      readonly pglite: PGlite;
      readonly ownsPglite?: boolean;
      readonly release?: () => void;
    };

/**
 * Opens Kysely over PostgreSQL or over an existing PGlite instance.
 * PGlite is reached through node-postgres with a pool of one (one wasm backend serves one
 * connection at a time; concurrent transactions queue on the pool instead of interleaving).
 */
/**
 * PGlite (a wasm PostgreSQL of some hundred megabytes once loaded) is imported only when the
 * embedded database is used, so commands against PostgreSQL stay small.
 */
let pgliteModules: { PGlite: typeof PGlite; createPgConfig: (p: PGlite) => object } | undefined;

export async function loadPglite(): Promise<NonNullable<typeof pgliteModules>> {
  if (!pgliteModules) {
    const [core, adapter] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite/node-postgres'),
    ]);
    pgliteModules = { PGlite: core.PGlite, createPgConfig: (p) => adapter.createPgConfig(p) };
  }
  return pgliteModules;
}

export function connect(conn: Connection): Database {
  if (conn.engine === 'pglite' && !pgliteModules) {
    throw new Error('call loadPglite() before connecting to PGlite');
  }
  if (conn.engine === 'postgres') {
    const pool = new pg.Pool({ connectionString: conn.url, max: conn.poolSize ?? 10 });
    // An idle client whose server connection dies (restart, pg_terminate_backend) is discarded by
    // the pool; without a listener the error would crash the process. Queries in flight still fail.
    pool.on('error', () => undefined);
    // Likewise for a checked-out client between queries (the sealer holds one for its lock).
    pool.on('connect', (client) => client.on('error', () => undefined));
    const db = new Kysely<CoreDb>({ dialect: new PostgresDialect({ pool }) });
    return { db, engine: 'postgres', close: () => db.destroy() };
  }
  const pool = new pg.Pool({ ...pgliteModules?.createPgConfig(conn.pglite), max: 1 });
  const db = new Kysely<CoreDb>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    engine: 'pglite',
    async close() {
      await db.destroy();
      if (conn.ownsPglite) {
        await conn.pglite.close();
      }
      conn.release?.();
    },
  };
}

/**
 * Opens the configured database: PostgreSQL when `databaseUrl` is set, otherwise the embedded
 * database in `dataDir/pg`, guarded by a lock file because nothing in PGlite locks its folder.
 */
export async function openDatabase(options: {
  dataDir: string;
  databaseUrl: string | undefined;
}): Promise<Database> {
  if (options.databaseUrl) {
    return connect({ engine: 'postgres', url: options.databaseUrl });
  }
  fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const release = takeLock(path.join(options.dataDir, 'custos.lock'));
  try {
    const pgDir = path.join(options.dataDir, 'pg');
    fs.mkdirSync(pgDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(pgDir, 0o700);
    const { PGlite: Lite } = await loadPglite();
    const pglite = await Lite.create(pgDir);
    return connect({ engine: 'pglite', pglite, ownsPglite: true, release });
  } catch (e) {
    release();
    throw e;
  }
}

/** A lock file holding our pid; a stale one (its process gone) is taken over. */
function takeLock(file: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw e;
      }
      const pid = Number(fs.readFileSync(file, 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new CustosError(
          'CUSTOS_ERR_DATA_DIR_LOCKED',
          `the data folder is in use by process ${pid} (${file}); stop it first`,
        );
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new CustosError('CUSTOS_ERR_DATA_DIR_LOCKED', `could not take the lock ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
