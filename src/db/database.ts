import fs from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { CustosError } from '../errors.ts';
import { APP_ROLE, PRACTICE_SETTING, practiceIdOf } from './practice-scope.ts';
import type { CoreDb } from './schema.ts';

// int8 (audit sequence numbers, counts) stays a string: JavaScript numbers lose precision past 2^53.
// timestamptz is parsed into Date by pg's default parser.

export type Engine = 'pglite' | 'postgres';

/**
 * An open database with two handles over the same connections (practice isolation, migration 008):
 *
 * - `db`, the application's: every statement runs as the role `custos_app` with
 *   `custos.practice_id` set to `practiceId`, so row-level security shows it that practice's rows
 *   only. Unbound (`practiceId` undefined) it sees no practice's rows at all. This is the handle
 *   services, the gate and the sealer get.
 * - `owner`, the role that logged in (PGlite: the superuser): migrations, startup, and tests that
 *   act as an attacker with database access. Never handed to a service.
 *
 * Both switch a pooled connection with `SET ROLE` when it changes hands, so a statement could
 * switch back (`RESET ROLE`): the isolation catches a query that forgets its practice filter, it
 * does not contain arbitrary SQL run on the connection.
 */
export interface Database {
  readonly db: Kysely<CoreDb>;
  readonly owner: Kysely<CoreDb>;
  readonly practiceId: string | undefined;
  readonly engine: Engine;
  /** The same database (same connections) with `db` bound to a practice. */
  forPractice(practiceId: string): Database;
  /** Closes the connections of this database and every copy from `forPractice`. */
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

/**
 * Opens Kysely over PostgreSQL or over an existing PGlite instance, unbound (`forPractice` binds).
 * PGlite is reached through node-postgres with a pool of one (one wasm backend serves one
 * connection at a time; concurrent transactions queue on the pool instead of interleaving).
 */
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
    // Each pooled client is its own server session.
    return handles(
      pool,
      'postgres',
      (client) => client,
      once(() => pool.end()),
      preparing,
    );
  }
  // Both handles share this pool of one: PGlite has one session, and the pool is what makes
  // transactions queue instead of interleaving.
  const pool = new pg.Pool({ ...pgliteModules?.createPgConfig(conn.pglite), max: 1 });
  return handles(
    pool,
    'pglite',
    // Every client of every pool over this PGlite is the same, single session.
    () => conn.pglite,
    once(async () => {
      await pool.end();
      if (conn.ownsPglite) {
        await conn.pglite.close();
      }
      conn.release?.();
    }),
  );
}

/** Which role and practice each database session was last set to (see `handles`). */
const setTo = new WeakMap<object, string>();

/**
 * The owner's and the application's Kysely over one pool. A session is switched (one round trip)
 * only when a handle set to another role or practice takes it: the application's connections
 * are switched once and stay.
 */
function handles(
  pool: pg.Pool,
  engine: Engine,
  sessionOf: (client: pg.PoolClient) => object,
  close: () => Promise<void>,
  wrap: (client: pg.PoolClient) => pg.PoolClient = (client) => client,
): Database {
  const as = (who: string, role: string, practiceId: string) =>
    new Kysely<CoreDb>({
      dialect: new PostgresDialect({
        pool: {
          async connect() {
            const client = await pool.connect();
            const session = sessionOf(client);
            if (setTo.get(session) !== who) {
              try {
                // Session level (is_local false), outside any transaction: it lasts until switched.
                await client.query(
                  "SELECT set_config('role', $1, false), set_config($2, $3, false) AS practice",
                  [role, PRACTICE_SETTING, practiceId],
                );
              } catch (e) {
                setTo.delete(session);
                client.release(e as Error);
                throw e;
              }
              setTo.set(session, who);
            }
            return wrap(client);
          },
          // The pool is shared by both handles and ended once, by `close`.
          end: async () => undefined,
        },
      }),
    });
  // 'none' is SET ROLE NONE: back to the role that logged in.
  const owner = as('owner', 'none', '');
  const bound = (practiceId: string | undefined): Database => ({
    db: as(`app:${practiceId ?? ''}`, APP_ROLE, practiceId ?? ''),
    owner,
    practiceId,
    engine,
    forPractice: (id) => bound(practiceIdOf(id)),
    close,
  });
  return bound(undefined);
}

/**
 * Statements the process runs again and again (the gate's facts and audited reads, session
 * checks) are sent as named prepared statements once a text has been seen twice, so PostgreSQL
 * plans them once per connection instead of on every call (planning is most of the cost of a
 * small query under row-level security). Bounded per connection; texts seen once (IN lists of
 * varying length) stay unnamed. PostgreSQL only: PGlite's single session is shared by every pool
 * client, which could not know each other's statements.
 */
const seen = new Map<string, number>();
const SEEN_MAX = 5000;
const PREPARED_PER_CONNECTION = 500;
const prepared = new WeakMap<pg.PoolClient, Map<string, string>>();
let nextName = 0;

function preparing(client: pg.PoolClient): pg.PoolClient {
  let names = prepared.get(client);
  if (!names) {
    names = new Map();
    prepared.set(client, names);
  }
  const known = names;
  const query = (text: unknown, values?: unknown[]) => {
    // Several commands in one text (migrations, setup) cannot be a prepared statement.
    if (typeof text !== 'string' || text.includes(';')) {
      return (client.query as (...a: unknown[]) => unknown)(text, values);
    }
    let name = known.get(text);
    if (name === undefined) {
      const n = (seen.get(text) ?? 0) + 1;
      if (seen.size < SEEN_MAX || seen.has(text)) {
        seen.set(text, n);
      }
      if (n >= 2 && known.size < PREPARED_PER_CONNECTION) {
        name = `custos_${nextName++}`;
        known.set(text, name);
      }
    }
    return name === undefined
      ? client.query(text, values)
      : client.query({ name, text, values: values ?? [] });
  };
  return Object.assign(Object.create(client) as pg.PoolClient, {
    query,
    release: client.release.bind(client),
  });
}

function once(f: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= f();
    return done;
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
