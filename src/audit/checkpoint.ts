import { createHash, type KeyObject, verify } from 'node:crypto';

/**
 * A signed checkpoint (a tree head, after RFC 9162 4.10 and the transparency-log checkpoint
 * note format): the tree size, root hash, the sequence range and rolled-back gaps it covers,
 * the hash of the previous checkpoint, and the time; signed with Ed25519.
 */
export interface Checkpoint {
  readonly number: number;
  readonly treeSize: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly root: Buffer;
  readonly prevHash: Buffer;
  /** Rolled-back sequence numbers in [firstSeq, lastSeq], as inclusive ranges. */
  readonly gaps: readonly (readonly [number, number])[];
  readonly createdAt: Date;
  readonly keyId: string;
  readonly signature: Buffer;
}

export const CHECKPOINT_FORMAT = 'custos-checkpoint/1';
/** `prev_hash` of the first checkpoint. */
export const GENESIS = Buffer.alloc(32);

/** The exact bytes that are signed. */
export function checkpointBody(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(
    [
      CHECKPOINT_FORMAT,
      String(c.number),
      String(c.treeSize),
      String(c.firstSeq),
      String(c.lastSeq),
      c.root.toString('base64'),
      c.prevHash.toString('base64'),
      JSON.stringify(c.gaps),
      String(c.createdAt.getTime()),
      c.keyId,
      '',
    ].join('\n'),
    'utf8',
  );
}

/** The hash the next checkpoint chains to: SHA-256 over the signed body and the signature. */
export function checkpointHash(c: Checkpoint): Buffer {
  return createHash('sha256').update(checkpointBody(c)).update(c.signature).digest();
}

export function verifySignature(c: Checkpoint, publicKey: KeyObject): boolean {
  return verify(null, checkpointBody(c), publicKey, c.signature);
}

/** JSON form for `custos audit checkpoints` (kept outside the database) and proofs. */
export function checkpointToJson(c: Checkpoint) {
  return {
    format: CHECKPOINT_FORMAT,
    number: c.number,
    treeSize: c.treeSize,
    firstSeq: c.firstSeq,
    lastSeq: c.lastSeq,
    root: c.root.toString('base64'),
    prevHash: c.prevHash.toString('base64'),
    gaps: c.gaps,
    createdAt: c.createdAt.toISOString(),
    keyId: c.keyId,
    signature: c.signature.toString('base64'),
  };
}

export type CheckpointJson = ReturnType<typeof checkpointToJson>;

export function checkpointFromJson(j: CheckpointJson): Checkpoint {
  return {
    number: j.number,
    treeSize: j.treeSize,
    firstSeq: j.firstSeq,
    lastSeq: j.lastSeq,
    root: Buffer.from(j.root, 'base64'),
    prevHash: Buffer.from(j.prevHash, 'base64'),
    gaps: j.gaps,
    createdAt: new Date(j.createdAt),
    keyId: j.keyId,
    signature: Buffer.from(j.signature, 'base64'),
  };
}

/** Inclusive ranges from a sorted list of numbers. */
export function toRanges(sorted: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === n - 1) {
      last[1] = n;
    } else {
      out.push([n, n]);
    }
  }
  return out;
}

export const inRanges = (ranges: readonly (readonly [number, number])[], n: number): boolean =>
  ranges.some(([a, b]) => n >= a && n <= b);
