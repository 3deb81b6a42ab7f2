import { type Kysely, type Selectable, sql } from 'kysely';
import type { CoreDb, CoreTables } from '../db/schema.ts';
import { canonicalJson, encodeFields, HASHED_COLUMNS } from './canonical.ts';
import type { Checkpoint } from './checkpoint.ts';

export type CheckpointRow = Selectable<CoreTables['audit_checkpoints']>;

export function checkpointFromRow(r: CheckpointRow): Checkpoint {
  return {
    number: Number(r.number),
    treeSize: Number(r.tree_size),
    firstSeq: Number(r.first_seq),
    lastSeq: Number(r.last_seq),
    root: r.root,
    prevHash: r.prev_hash,
    gaps: JSON.parse(r.gaps) as [number, number][],
    createdAt: r.created_at,
    keyId: r.key_id,
    signature: r.signature,
  };
}

/** One entry as the sealer and verifier hash it: its sequence number and leaf input. */
export interface HashInput {
  readonly seq: number;
  readonly canonical: Buffer;
}

/**
 * Entries with from < seq <= to, in sequence order, encoded canonically straight from column
 * values (time as epoch milliseconds, detail as text): several times faster than building
 * `Date` and JSON objects per row, and the same bytes as `encodeEntry` (tested).
 */
export async function entriesForHashing(
  db: Kysely<CoreDb>,
  q: { after: number; upTo: number; limit: number },
): Promise<HashInput[]> {
  const r = await sql<Record<string, string | null>>`
    SELECT seq::text AS seq, (extract(epoch FROM at) * 1000)::int8::text AS at_ms, ${sql.join(HASHED_COLUMNS.map((c) => sql.ref(c)))},
           detail::text AS detail
      FROM audit_entries WHERE seq > ${q.after} AND seq <= ${q.upTo} ORDER BY audit_entries.seq LIMIT ${q.limit}`.execute(
    db,
  );
  return r.rows.map((row) => {
    const texts = HASHED_COLUMNS.map((c) => row[c] ?? null);
    const detail = row.detail ?? null;
    texts.push(detail === null ? null : canonicalJson(JSON.parse(detail)));
    return { seq: Number(row.seq), canonical: encodeFields(row.seq ?? '0', Number(row.at_ms), texts) };
  });
}
