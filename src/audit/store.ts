import type { Selectable } from 'kysely';
import type { CoreTables } from '../db/schema.ts';
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
