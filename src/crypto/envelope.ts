import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CustosError } from '../errors.ts';

/**
 * Versioned AES-256-GCM envelope (NIST SP 800-38D) built on node:crypto.
 *
 *   byte 0        format version (1)
 *   bytes 1..16   key id (a UUID, raw bytes): which data key or key-encryption key to use
 *   bytes 17..28  96-bit random nonce
 *   bytes 29..    ciphertext, then the 16-byte GCM tag
 *
 * The associated data binds each ciphertext to its header and to where it lives (table,
 * column, row, version), so a ciphertext copied to another row, column or version fails to
 * decrypt just as a flipped byte does. Keys rotate because the key id travels with the data.
 */
export const FORMAT_V1 = 1;
const HEADER = 1 + 16 + 12;
const TAG = 16;

/** Where a ciphertext lives; every part goes into the associated data. */
export interface Binding {
  readonly table: string;
  readonly column: string;
  readonly row: string;
  readonly version: number;
}

export function uuidToBytes(id: string): Buffer {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) {
    throw new TypeError('key id is not a UUID');
  }
  return Buffer.from(hex, 'hex');
}

export function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function aad(header: Buffer, at: Binding): Buffer {
  return Buffer.concat([header, Buffer.from(`${at.table}\0${at.column}\0${at.row}\0${at.version}`, 'utf8')]);
}

/** Encrypts `plaintext` under `key` (32 bytes), identified by `keyId`, bound to `at`. */
export function seal(key: Buffer, keyId: string, at: Binding, plaintext: Buffer): Buffer {
  const header = Buffer.alloc(HEADER);
  header[0] = FORMAT_V1;
  uuidToBytes(keyId).copy(header, 1);
  randomBytes(12).copy(header, 17);
  const cipher = createCipheriv('aes-256-gcm', key, header.subarray(17, HEADER));
  cipher.setAAD(aad(header, at));
  return Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** The key id a ciphertext names, without decrypting it. */
export function keyIdOf(blob: Buffer, at: Binding): string {
  if (blob.length < HEADER + TAG || blob[0] !== FORMAT_V1) {
    throw integrityError(at);
  }
  return bytesToUuid(blob.subarray(1, 17));
}

/** Decrypts and authenticates; any change to the bytes or to the binding fails. */
export function open(key: Buffer, at: Binding, blob: Buffer): Buffer {
  keyIdOf(blob, at);
  const header = blob.subarray(0, HEADER);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, header.subarray(17, HEADER));
    decipher.setAAD(aad(header, at));
    decipher.setAuthTag(blob.subarray(blob.length - TAG));
    return Buffer.concat([decipher.update(blob.subarray(HEADER, blob.length - TAG)), decipher.final()]);
  } catch (e) {
    throw integrityError(at, e);
  }
}

function integrityError(at: Binding, cause?: unknown): CustosError {
  return new CustosError(
    'CUSTOS_ERR_INTEGRITY',
    `stored ciphertext failed its integrity check (${at.table}.${at.column}, row ${at.row}, version ${at.version})`,
    { cause },
  );
}
