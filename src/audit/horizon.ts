import { type Kysely, sql } from 'kysely';
import type { CoreDb } from '../db/schema.ts';

/**
 * The safe horizon: the highest sequence number below which no transaction is still in flight.
 * Entries are appended without a lock, so sequence numbers reach the table out of commit order,
 * and a rolled-back transaction leaves a permanent gap.
 *
 * 1. L = the sequence's last value. Every number <= L was handed out before this point.
 * 2. X = a fresh transaction id (this statement commits at once). The insert trigger gives a
 *    transaction its xid before its sequence number, so every transaction holding a number <= L
 *    has an xid < X. (A snapshot's xmax is not enough: it is latestCompletedXid + 1, and a
 *    running transaction may have a larger xid.)
 * 3. Wait until a snapshot's xmin >= X: no transaction older than X is still running. From then
 *    on, every entry <= L that will ever exist is visible, and a missing number is a gap.
 *
 * A long-running transaction holds the horizon back (never past its own entries): returns
 * `undefined` after `timeoutMs` and the sealer tries again on its next round.
 */
export async function safeHorizon(
  db: Kysely<CoreDb>,
  options: { timeoutMs: number; pollMs?: number },
): Promise<number | undefined> {
  const seq = await sql<{
    last_value: string;
    is_called: boolean;
  }>`SELECT last_value, is_called FROM audit_entries_seq`.execute(db);
  const row = seq.rows[0];
  const last = row ? (row.is_called ? Number(row.last_value) : Number(row.last_value) - 1) : 0;
  const x = await sql<{ xid: string }>`SELECT pg_current_xact_id()::text AS xid`.execute(db);
  const xid = BigInt(x.rows[0]?.xid ?? '0');
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const s = await sql<{
      xmin: string;
    }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`.execute(db);
    if (BigInt(s.rows[0]?.xmin ?? '0') >= xid) {
      return last;
    }
    if (Date.now() >= deadline) {
      return undefined;
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 5));
  }
}
