import fs from 'node:fs';
import { type Kysely, sql } from 'kysely';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import type { StoredEntry } from './canonical.ts';
import { type Checkpoint, checkpointBody, checkpointHash, GENESIS, toRanges } from './checkpoint.ts';
import { safeHorizon } from './horizon.ts';
import { MerkleFrontier } from './merkle.ts';
import { checkpointFromRow, leavesFor } from './store.ts';

export interface SealOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  readonly clock?: () => Date;
  /** Most entries per checkpoint (bounds memory and checkpoint size). */
  readonly maxBatch?: number;
  /** How long to wait for in-flight transactions before giving up this round. */
  readonly horizonTimeoutMs?: number;
  /** Called with each batch of newly sealed entries (the second copy, OWASP ASVS 16.4.3). */
  readonly mirror?: (entries: readonly StoredEntry[], checkpoint: Checkpoint) => void | Promise<void>;
}

export interface SealResult {
  readonly checkpoints: number;
  readonly entries: number;
  readonly treeSize: number;
}

/**
 * Seals every entry below the safe horizon into signed checkpoints (RFC 9162 Merkle tree; leaf =
 * SHA-256(0x00 || canonical entry)). Only one sealer may run at a time: the caller holds the
 * leadership (see `SealerService`), and the checkpoint's primary key and unique `prev_hash`
 * make a second writer fail rather than fork the chain.
 */
export async function sealOnce(options: SealOptions): Promise<SealResult> {
  const { db, keyring } = options;
  const clock = options.clock ?? (() => new Date());
  const maxBatch = options.maxBatch ?? 50_000;
  const lastRow = await db
    .selectFrom('audit_checkpoints')
    .selectAll()
    .orderBy('number', 'desc')
    .limit(1)
    .executeTakeFirst();
  let prev = lastRow ? checkpointFromRow(lastRow) : undefined;
  const frontier = lastRow ? MerkleFrontier.fromJSON(JSON.parse(lastRow.frontier)) : new MerkleFrontier();
  const horizon = await safeHorizon(db, { timeoutMs: options.horizonTimeoutMs ?? 2000 });
  let from = (prev?.lastSeq ?? 0) + 1;
  let checkpoints = 0;
  let entries = 0;
  while (horizon !== undefined && from <= horizon) {
    const rows = await leavesFor(db, { after: from - 1, upTo: horizon, limit: maxBatch });
    const upper = rows.length === maxBatch ? Number(rows[rows.length - 1]?.seq) : horizon;
    const gaps: number[] = [];
    const leaves: Buffer[] = [];
    let expect = from;
    for (const row of rows) {
      const seq = Number(row.seq);
      for (; expect < seq; expect++) {
        gaps.push(expect);
      }
      expect = seq + 1;
      const leaf = row.leaf;
      leaves.push(leaf);
      frontier.append(leaf);
    }
    for (; expect <= upper; expect++) {
      gaps.push(expect);
    }
    const unsigned = {
      number: (prev?.number ?? 0) + 1,
      treeSize: frontier.size,
      firstSeq: from,
      lastSeq: upper,
      root: frontier.root(),
      prevHash: prev ? checkpointHash(prev) : GENESIS,
      gaps: toRanges(gaps),
      createdAt: clock(),
      keyId: keyring.auditKeyId,
    };
    const checkpoint: Checkpoint = { ...unsigned, signature: keyring.signAudit(checkpointBody(unsigned)) };
    await db
      .insertInto('audit_checkpoints')
      .values({
        number: String(checkpoint.number),
        tree_size: String(checkpoint.treeSize),
        first_seq: String(checkpoint.firstSeq),
        last_seq: String(checkpoint.lastSeq),
        root: checkpoint.root,
        prev_hash: checkpoint.prevHash,
        gaps: JSON.stringify(checkpoint.gaps),
        created_at: checkpoint.createdAt,
        key_id: checkpoint.keyId,
        signature: checkpoint.signature,
        leaves: Buffer.concat(leaves),
        frontier: JSON.stringify(frontier.toJSON()),
      })
      .execute();
    if (options.mirror) {
      const full = await db
        .selectFrom('audit_entries')
        .selectAll()
        .where('seq', '>=', String(from))
        .where('seq', '<=', String(upper))
        .orderBy('seq')
        .execute();
      await options.mirror(full, checkpoint);
    }
    prev = checkpoint;
    checkpoints++;
    entries += rows.length;
    from = upper + 1;
  }
  return { checkpoints, entries, treeSize: frontier.size };
}

/** Lock key for sealer leadership ("custos-sealer" as two int4s). */
const LOCK = sql`pg_try_advisory_lock(1668641651, 1701603698)`;
const UNLOCK = sql`pg_advisory_unlock(1668641651, 1701603698)`;

/**
 * One sealing round for a command-line run (`custos import`, `custos audit seal`, …): takes the
 * sealer lock if nobody holds it (a running server's sealer does), seals, releases. When the
 * lock is busy the server is sealing, and this returns `undefined`.
 */
export async function sealIfFree(options: SealOptions): Promise<SealResult | undefined> {
  return options.db.connection().execute(async (conn) => {
    const got = await sql<{ locked: boolean }>`SELECT ${LOCK} AS locked`.execute(conn);
    if (!got.rows[0]?.locked) {
      return undefined;
    }
    try {
      return await sealOnce({ ...options, db: conn });
    } finally {
      await sql`SELECT ${UNLOCK}`.execute(conn);
    }
  });
}

/** Appends each newly sealed entry as a JSON line to a file, the copy outside the database. */
export function fileMirror(file: string): NonNullable<SealOptions['mirror']> {
  return (entries, checkpoint) => {
    const lines = entries.map((e) => JSON.stringify({ ...e, checkpoint: checkpoint.number })).join('\n');
    if (lines) {
      const fd = fs.openSync(file, 'a', 0o600);
      try {
        fs.writeSync(fd, `${lines}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  };
}

/**
 * Runs the sealer inside `custos serve`: every `intervalMs`, seal what is safe. On PostgreSQL,
 * several servers may share a database; a session advisory lock makes one the leader, and when
 * its connection dies the lock is released and another server takes over on its next try. On
 * PGlite the data-folder lock already guarantees a single process.
 */
export class SealerService {
  readonly #options: SealOptions & { engine: 'pglite' | 'postgres'; intervalMs?: number };
  #stopped = false;
  #running: Promise<void> | undefined;
  #leader = false;

  constructor(options: SealOptions & { engine: 'pglite' | 'postgres'; intervalMs?: number }) {
    this.#options = options;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  async #loop(): Promise<void> {
    const interval = this.#options.intervalMs ?? 200;
    while (!this.#stopped) {
      try {
        if (this.#options.engine === 'pglite') {
          this.#leader = true;
          await sealOnce(this.#options);
          await sleep(interval);
        } else {
          await this.#options.db.connection().execute(async (conn) => {
            const got = await sql<{ locked: boolean }>`SELECT ${LOCK} AS locked`.execute(conn);
            if (!got.rows[0]?.locked) {
              return;
            }
            this.#leader = true;
            try {
              while (!this.#stopped) {
                await sealOnce({ ...this.#options, db: conn });
                await sleep(interval);
              }
            } finally {
              this.#leader = false;
              await sql`SELECT ${UNLOCK}`.execute(conn);
            }
          });
          await sleep(interval);
        }
      } catch (e) {
        // A failed round (lost connection, a concurrent sealer's checkpoint won the race) is
        // retried on the next one; the error class is reported, never row contents.
        this.#leader = false;
        process.emitWarning(`audit sealer round failed (${(e as Error).name}); retrying`);
        await sleep(interval);
      }
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
