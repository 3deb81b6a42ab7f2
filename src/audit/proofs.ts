import type { KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import { CustosError } from '../errors.ts';
import { encodeEntry } from './canonical.ts';
import { type CheckpointJson, checkpointFromJson, checkpointToJson, verifySignature } from './checkpoint.ts';
import { consistencyProof, inclusionProof, leafHash, verifyConsistency, verifyInclusion } from './merkle.ts';
import { checkpointFromRow } from './store.ts';

/**
 * Inclusion and consistency proofs (RFC 9162 2.1.3, 2.1.4) against signed checkpoints, in a
 * JSON form that `custos audit check-proof` (or any RFC 9162 verifier plus an Ed25519 check)
 * verifies offline with nothing but the audit public key.
 */
export interface InclusionProofJson {
  readonly type: 'inclusion';
  /** The entry's canonical encoding (src/audit/canonical.ts), base64: the leaf input. */
  readonly entry: { readonly seq: number; readonly canonical: string };
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly proof: readonly string[];
  readonly checkpoint: CheckpointJson;
}

export interface ConsistencyProofJson {
  readonly type: 'consistency';
  readonly from: CheckpointJson;
  readonly to: CheckpointJson;
  readonly proof: readonly string[];
}

export type ProofJson = InclusionProofJson | ConsistencyProofJson;

const b64 = (b: Buffer) => b.toString('base64');

/** Leaf hashes of checkpoints 1..upTo, in order, and each checkpoint. */
async function leavesUpTo(db: Kysely<CoreDb>, upTo?: number) {
  let q = db.selectFrom('audit_checkpoints').selectAll().orderBy('number');
  if (upTo !== undefined) {
    q = q.where('number', '<=', String(upTo));
  }
  const rows = await q.execute();
  const leaves: Buffer[] = [];
  for (const r of rows) {
    for (let i = 0; i < r.leaves.length; i += 32) {
      leaves.push(r.leaves.subarray(i, i + 32));
    }
  }
  return { rows, leaves };
}

export async function proveEntry(db: Kysely<CoreDb>, seq: number): Promise<InclusionProofJson> {
  const entry = await db
    .selectFrom('audit_entries')
    .selectAll()
    .where('seq', '=', String(seq))
    .executeTakeFirst();
  if (!entry) {
    throw new CustosError('CUSTOS_ERR_NOT_FOUND', `audit entry ${seq} not found`);
  }
  const { rows, leaves } = await leavesUpTo(db);
  const last = rows[rows.length - 1];
  if (!last || Number(last.last_seq) < seq) {
    throw new CustosError(
      'CUSTOS_ERR_NOT_FOUND',
      `audit entry ${seq} is not sealed yet (run custos audit seal)`,
    );
  }
  // The leaf index is the entry's position among sealed entries.
  let leafIndex = 0;
  for (const r of rows) {
    if (Number(r.last_seq) < seq) {
      leafIndex += r.leaves.length / 32;
    } else {
      const before = await db
        .selectFrom('audit_entries')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('seq', '>=', r.first_seq)
        .where('seq', '<', String(seq))
        .executeTakeFirstOrThrow();
      leafIndex += Number(before.n);
      break;
    }
  }
  const canonical = encodeEntry(entry);
  if (!leafHash(canonical).equals(leaves[leafIndex] ?? Buffer.alloc(0))) {
    throw new CustosError(
      'CUSTOS_ERR_INTEGRITY',
      `audit entry ${seq} does not match its sealed leaf (run custos audit verify)`,
    );
  }
  return {
    type: 'inclusion',
    entry: { seq, canonical: b64(canonical) },
    leafIndex,
    treeSize: leaves.length,
    proof: inclusionProof(leafIndex, leaves).map(b64),
    checkpoint: checkpointToJson(checkpointFromRow(last)),
  };
}

export async function proveConsistency(
  db: Kysely<CoreDb>,
  from: number,
  to: number,
): Promise<ConsistencyProofJson> {
  if (!(from >= 1 && to >= from)) {
    throw new CustosError(
      'CUSTOS_ERR_VALIDATION',
      '--from and --to must be checkpoint numbers with 1 <= from <= to',
      { field: 'from' },
    );
  }
  const { rows, leaves } = await leavesUpTo(db, to);
  const a = rows.find((r) => Number(r.number) === from);
  const b = rows.find((r) => Number(r.number) === to);
  if (!a || !b) {
    throw new CustosError('CUSTOS_ERR_NOT_FOUND', `checkpoint ${!a ? from : to} not found`);
  }
  const size1 = Number(a.tree_size);
  return {
    type: 'consistency',
    from: checkpointToJson(checkpointFromRow(a)),
    to: checkpointToJson(checkpointFromRow(b)),
    proof: size1 === 0 ? [] : consistencyProof(size1, leaves.slice(0, Number(b.tree_size))).map(b64),
  };
}

/** Verifies a proof offline: checkpoint signatures, then the RFC 9162 proof. */
export function checkProof(
  p: ProofJson,
  publicKey: KeyObject,
): { ok: true; summary: string } | { ok: false; problem: string } {
  const proof = p.proof.map((x) => Buffer.from(x, 'base64'));
  if (p.type === 'inclusion') {
    const c = checkpointFromJson(p.checkpoint);
    if (!verifySignature(c, publicKey)) {
      return { ok: false, problem: `checkpoint ${c.number}: signature does not verify` };
    }
    const leaf = leafHash(Buffer.from(p.entry.canonical, 'base64'));
    const ok =
      p.treeSize === c.treeSize &&
      verifyInclusion({ index: p.leafIndex, treeSize: c.treeSize, leafHash: leaf, proof, root: c.root });
    return ok
      ? {
          ok: true,
          summary: `entry ${p.entry.seq} is leaf ${p.leafIndex} of the tree of size ${c.treeSize} signed in checkpoint ${c.number}`,
        }
      : {
          ok: false,
          problem: `entry ${p.entry.seq}: inclusion proof does not verify against checkpoint ${c.number}`,
        };
  }
  const a = checkpointFromJson(p.from);
  const b = checkpointFromJson(p.to);
  for (const c of [a, b]) {
    if (!verifySignature(c, publicKey)) {
      return { ok: false, problem: `checkpoint ${c.number}: signature does not verify` };
    }
  }
  const ok =
    a.treeSize === b.treeSize
      ? a.root.equals(b.root) && proof.length === 0
      : a.treeSize === 0 ||
        verifyConsistency({ size1: a.treeSize, size2: b.treeSize, root1: a.root, root2: b.root, proof });
  return ok
    ? {
        ok: true,
        summary: `checkpoint ${b.number} (size ${b.treeSize}) extends checkpoint ${a.number} (size ${a.treeSize})`,
      }
    : { ok: false, problem: `consistency proof from checkpoint ${a.number} to ${b.number} does not verify` };
}
