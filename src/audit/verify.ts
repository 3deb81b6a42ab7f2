import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import { type Checkpoint, checkpointHash, GENESIS, inRanges, verifySignature } from './checkpoint.ts';
import { MerkleFrontier } from './merkle.ts';
import { checkpointFromRow, hashRows, lastSeqOf, rowsForHashing } from './store.ts';

export type VerifyResult =
  | {
      readonly ok: true;
      readonly checkpoints: number;
      readonly entries: number;
      readonly treeSize: number;
      readonly unsealed: number;
    }
  | { readonly ok: false; readonly at: string; readonly problem: string };

const ENTRY_BATCH = 10_000;

/**
 * Recomputes every leaf and root, and checks every checkpoint's chain link and signature
 * (DESIGN.md invariant 4). Stops at the first problem and names it: `entry 1234` or
 * `checkpoint 17`. Memory stays O(log n) plus one batch of entries.
 */
export async function verifyTrail(
  db: Kysely<CoreDb>,
  options: {
    publicKey: KeyObject;
    keyId: string;
    fromCheckpoint?: number;
    /** Checkpoints kept outside the database (`custos audit checkpoints`): each must still be there, unchanged. */
    anchors?: readonly Checkpoint[];
    onProgress?: (done: number, total: number) => void;
  },
): Promise<VerifyResult> {
  const start = options.fromCheckpoint ?? 1;
  const totalRow = await db
    .selectFrom('audit_entries')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  const total = Number(totalRow.n);
  let prev: Checkpoint | undefined;
  let frontier = new MerkleFrontier();
  if (start > 1) {
    const row = await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('number', '=', String(start - 1))
      .executeTakeFirst();
    if (!row) {
      return { ok: false, at: `checkpoint ${start - 1}`, problem: 'is missing (cannot start after it)' };
    }
    prev = checkpointFromRow(row);
    const f = MerkleFrontier.fromJSON(JSON.parse(row.frontier));
    // The stored frontier is trusted only because it reproduces the signed root.
    if (
      !verifySignature(prev, options.publicKey) ||
      f.size !== prev.treeSize ||
      !f.root().equals(prev.root)
    ) {
      return {
        ok: false,
        at: `checkpoint ${start - 1}`,
        problem: 'signature or stored frontier does not match (verify from the start)',
      };
    }
    frontier = f;
  }
  let checkpoints = 0;
  let entries = 0;
  let number = start;
  for (;;) {
    const row = await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('number', '=', String(number))
      .executeTakeFirst();
    if (!row) {
      break;
    }
    const c = checkpointFromRow(row);
    const at = `checkpoint ${c.number}`;
    if (c.keyId !== options.keyId || !verifySignature(c, options.publicKey)) {
      return { ok: false, at, problem: 'signature does not verify with the audit public key' };
    }
    if (!c.prevHash.equals(prev ? checkpointHash(prev) : GENESIS)) {
      return { ok: false, at, problem: 'does not chain to the previous checkpoint (prev_hash differs)' };
    }
    if (c.firstSeq !== (prev?.lastSeq ?? 0) + 1 || c.lastSeq < c.firstSeq) {
      return {
        ok: false,
        at,
        problem: `covers sequence ${c.firstSeq}..${c.lastSeq}, expected to start at ${(prev?.lastSeq ?? 0) + 1}`,
      };
    }
    const stored = row.leaves;
    let i = 0;
    let expect = c.firstSeq;
    let after = c.firstSeq - 1;
    // Prefetch: PostgreSQL prepares the next batch while this one is hashed.
    let pending = rowsForHashing(db, { after, upTo: c.lastSeq, limit: ENTRY_BATCH });
    for (;;) {
      const raw = await pending;
      if (raw.length === ENTRY_BATCH) {
        after = lastSeqOf(raw);
        pending = rowsForHashing(db, { after, upTo: c.lastSeq, limit: ENTRY_BATCH });
      }
      const batch = hashRows(raw);
      for (const e of batch) {
        const seq = Number(e.seq);
        for (; expect < seq; expect++) {
          if (!inRanges(c.gaps, expect)) {
            return {
              ok: false,
              at: `entry ${expect}`,
              problem: `is missing from the table (sealed in checkpoint ${c.number})`,
            };
          }
        }
        expect = seq + 1;
        if (inRanges(c.gaps, seq)) {
          return {
            ok: false,
            at: `entry ${seq}`,
            problem: `lies in a rolled-back gap of checkpoint ${c.number} (inserted after sealing)`,
          };
        }
        const leaf = e.leaf;
        const sealed = stored.subarray(i * 32, i * 32 + 32);
        if (sealed.length !== 32 || !leaf.equals(sealed)) {
          return {
            ok: false,
            at: `entry ${seq}`,
            problem: `does not match the leaf sealed in checkpoint ${c.number} (changed, or entries reordered)`,
          };
        }
        frontier.append(leaf);
        i++;
      }
      entries += batch.length;
      options.onProgress?.(entries, total);
      if (batch.length < ENTRY_BATCH) {
        break;
      }
    }
    for (; expect <= c.lastSeq; expect++) {
      if (!inRanges(c.gaps, expect)) {
        return {
          ok: false,
          at: `entry ${expect}`,
          problem: `is missing from the table (sealed in checkpoint ${c.number})`,
        };
      }
    }
    if (i * 32 !== stored.length || frontier.size !== c.treeSize || !frontier.root().equals(c.root)) {
      return { ok: false, at, problem: 'root hash or tree size does not match its entries' };
    }
    prev = c;
    checkpoints++;
    number++;
  }
  const stray = await db
    .selectFrom('audit_checkpoints')
    .select('number')
    .where('number', '>=', String(number))
    .orderBy('number')
    .limit(1)
    .executeTakeFirst();
  if (stray) {
    return {
      ok: false,
      at: `checkpoint ${number}`,
      problem: `is missing, but checkpoint ${stray.number} exists after it`,
    };
  }
  for (const a of options.anchors ?? []) {
    const row = await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('number', '=', String(a.number))
      .executeTakeFirst();
    const same =
      row?.signature.equals(a.signature) && row.root.equals(a.root) && Number(row.tree_size) === a.treeSize;
    if (!same) {
      return {
        ok: false,
        at: `checkpoint ${a.number}`,
        problem: 'is missing or differs from the copy kept outside the database',
      };
    }
  }
  const unsealedRow = await db
    .selectFrom('audit_entries')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('seq', '>', String(prev?.lastSeq ?? 0))
    .executeTakeFirstOrThrow();
  const unsealed = Number(unsealedRow.n);
  options.onProgress?.(total, total);
  return { ok: true, checkpoints, entries, treeSize: frontier.size, unsealed };
}
