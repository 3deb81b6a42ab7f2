import type { Selectable } from 'kysely';
import type { AuditEntryTable } from '../db/schema.ts';

/**
 * The canonical, versioned byte encoding of an audit entry: the Merkle leaf input (RFC 9162
 * `leaf_hash = SHA-256(0x00 || entry)`). Anyone can re-implement it from this description:
 *
 *   u8   format version (1)
 *   u64  seq (big-endian)
 *   i64  time, milliseconds since the Unix epoch (big-endian)
 *   then each field below as u32 length (big-endian) + UTF-8 bytes, or 0xFFFFFFFF for null:
 *   practice_id, actor_kind, actor_id, role, on_behalf_of, action, resource_type, resource_id,
 *   patient_pseudonym, purpose, outcome, reason, client_address, user_agent_hash, session_id,
 *   request_id, detail (JSON with object keys sorted, no whitespace)
 */
export const ENTRY_FORMAT = 1;

export type StoredEntry = Selectable<AuditEntryTable>;

const FIELDS = [
  'practice_id',
  'actor_kind',
  'actor_id',
  'role',
  'on_behalf_of',
  'action',
  'resource_type',
  'resource_id',
  'patient_pseudonym',
  'purpose',
  'outcome',
  'reason',
  'client_address',
  'user_agent_hash',
  'session_id',
  'request_id',
] as const;

/** JSON with sorted object keys and no whitespace (what jsonb hands back is reordered). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

export function encodeEntry(e: StoredEntry): Buffer {
  const texts: (string | null)[] = FIELDS.map((f) => e[f]);
  texts.push(e.detail === null || e.detail === undefined ? null : canonicalJson(e.detail));
  return encodeFields(e.seq, e.at.getTime(), texts);
}

/** The column list (and order) `encodeFields` expects after seq and time; `detail` comes as text. */
export const HASHED_COLUMNS = FIELDS;

/**
 * The same encoding from raw column values (the sealer's and verifier's fast path: no Date or
 * JSON objects per row). `detail` is canonical JSON text or null.
 */
export function encodeFields(seq: string | number, atMs: number, texts: readonly (string | null)[]): Buffer {
  let size = 17;
  for (const t of texts) {
    size += 4 + (t === null ? 0 : Buffer.byteLength(t, 'utf8'));
  }
  const out = Buffer.allocUnsafe(size);
  const n = encodeFieldsInto(out, 0, seq, atMs, texts);
  return out.subarray(0, n);
}

/**
 * Writes the encoding into `out` at `start` (which must have room: see `encodedSize`) and
 * returns the end offset. Lets the hot path reuse one buffer and prefix the RFC 9162 leaf byte.
 */
export function encodeFieldsInto(
  out: Buffer,
  start: number,
  seq: string | number,
  atMs: number,
  texts: readonly (string | null)[],
): number {
  out[start] = ENTRY_FORMAT;
  out.writeBigUInt64BE(BigInt(seq), start + 1);
  out.writeBigInt64BE(BigInt(atMs), start + 9);
  let o = start + 17;
  for (const t of texts) {
    if (t === null) {
      out.writeUInt32BE(0xffffffff, o);
      o += 4;
    } else {
      const n = out.write(t, o + 4, 'utf8');
      out.writeUInt32BE(n, o);
      o += 4 + n;
    }
  }
  return o;
}

/** An upper bound on the encoded size (UTF-8 needs at most 3 bytes per UTF-16 unit). */
export function encodedSize(texts: readonly (string | null)[]): number {
  let size = 17;
  for (const t of texts) {
    size += 4 + (t === null ? 0 : t.length * 3);
  }
  return size;
}
