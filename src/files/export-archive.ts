import { createHash, randomBytes, scrypt } from 'node:crypto';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { Binding } from '../crypto/envelope.ts';
import { CustosError, isCustosError, validationError } from '../errors.ts';
import { decryptStream, encryptStream, keyIdOfBlob, STREAM_HEADER_BYTES } from './stream-cipher.ts';

/**
 * The bulk-export archive: FHIR NDJSON, gzip-compressed, then encrypted with a key derived from
 * a passphrase the privacy officer chooses, so the file can be read outside Custos (by whoever
 * holds the passphrase) and by no one else, wherever it is copied.
 *
 *   bytes 0..7     magic 0x89 'C' 'X' 'A' '\r' '\n' 0x1a '\n' (PNG-style: catches text-mode copies)
 *   bytes 8..11    header length N, uint32 big-endian (at most 4096)
 *   bytes 12..     header: N bytes of JSON, see {@link ArchiveHeader} (export id, format version,
 *                  scrypt parameters and salt; nothing about the patients)
 *   then           the STREAM ciphertext of src/files/stream-cipher.ts (AES-256-GCM, 64 KiB
 *                  segments) of the gzip stream, with the export id as its key id and the binding
 *                  `custos-export \0 sha256(header) \0 exportId \0 version`: the header is
 *                  authenticated by every segment, and a segment moved between archives fails.
 *
 * Key: scrypt (RFC 7914, node:crypto) of the NFKC-normalized passphrase with a fresh 16-byte salt,
 * N = 2^17, r = 8, p = 1 (128 MiB, about half a second; OWASP's recommendation), recorded in the
 * header so that stronger parameters can be chosen later without a new format. A reader refuses
 * parameters beyond fixed bounds, so a forged header cannot make it allocate gigabytes.
 *
 * Compression before encryption: the length of each archive leaks how compressible its content is,
 * which for a whole practice says nothing about one patient (no attacker-chosen content is mixed
 * in, so compression oracles such as CRIME do not apply).
 *
 * Rejected alternatives: a random key printed to the terminal (it ends up in shell history and
 * tickets); the practice's key-encryption key (the archive would be readable by anyone with the
 * server's key file and unreadable by the receiving system); age or OpenPGP (a dependency for a
 * format the receiving side must install anyway; this one is read back by `custos export --decrypt`).
 */

export const ARCHIVE_MAGIC = Buffer.from([0x89, 0x43, 0x58, 0x41, 0x0d, 0x0a, 0x1a, 0x0a]);
export const ARCHIVE_VERSION = 1;
const MAX_HEADER = 4096;
const PREFIX = ARCHIVE_MAGIC.length + 4;
export const MIN_PASSPHRASE = 16;
export const MAX_PASSPHRASE = 1024;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

export const DEFAULT_KDF: ScryptParams = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });

/** Bounds a reader accepts (and a writer uses): at most 512 MiB of scrypt memory. */
const KDF_BOUNDS = { minN: 2 ** 10, maxN: 2 ** 20, maxR: 16, maxP: 4, maxMem: 512 * 1024 * 1024 } as const;

/** The archive's self-description, stored in the clear before the ciphertext. */
export interface ArchiveHeader {
  readonly format: 'custos-export';
  readonly version: number;
  readonly exportId: string;
  /** When the export started (ISO 8601). */
  readonly createdAt: string;
  /** What the ciphertext holds once decrypted. */
  readonly content: 'application/fhir+ndjson';
  readonly compression: 'gzip';
  readonly cipher: 'aes-256-gcm-stream';
  readonly kdf: ScryptParams & { readonly name: 'scrypt'; readonly salt: string; readonly keyLength: 32 };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The error a damaged, foreign or wrongly unlocked archive gives: no detail about the content. */
export function archiveError(problem: string, cause?: unknown): CustosError {
  return new CustosError('CUSTOS_ERR_INTEGRITY', `export archive: ${problem}`, { cause });
}

/** Checks a passphrase (length only; never echoed): a validation error naming `passphrase`. */
export function checkPassphrase(passphrase: unknown, field = 'passphrase'): string {
  if (typeof passphrase !== 'string') {
    throw validationError(field, 'must be a string');
  }
  const n = [...passphrase.normalize('NFKC')].length;
  if (n < MIN_PASSPHRASE) {
    throw validationError(field, `must have at least ${MIN_PASSPHRASE} characters`);
  }
  if (n > MAX_PASSPHRASE) {
    throw validationError(field, `must have at most ${MAX_PASSPHRASE} characters`);
  }
  return passphrase;
}

function checkKdf(k: ScryptParams): void {
  const ok =
    Number.isInteger(k.N) &&
    k.N >= KDF_BOUNDS.minN &&
    k.N <= KDF_BOUNDS.maxN &&
    (k.N & (k.N - 1)) === 0 &&
    Number.isInteger(k.r) &&
    k.r >= 1 &&
    k.r <= KDF_BOUNDS.maxR &&
    Number.isInteger(k.p) &&
    k.p >= 1 &&
    k.p <= KDF_BOUNDS.maxP &&
    128 * k.N * k.r * k.p <= KDF_BOUNDS.maxMem;
  if (!ok) {
    throw archiveError('key derivation parameters out of bounds');
  }
}

function deriveKey(passphrase: string, salt: Buffer, k: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      Buffer.from(passphrase.normalize('NFKC'), 'utf8'),
      salt,
      32,
      { N: k.N, r: k.r, p: k.p, maxmem: 128 * k.N * k.r * k.p + 1024 * 1024 },
      (e, key) => (e ? reject(e) : resolve(key)),
    );
  });
}

/** What the ciphertext is bound to: this archive's header and export id. */
function bindingOf(headerBytes: Buffer, exportId: string): Binding {
  return {
    table: 'custos-export',
    column: createHash('sha256').update(headerBytes).digest('hex'),
    row: exportId,
    version: ARCHIVE_VERSION,
  };
}

/**
 * Turns a stream of NDJSON bytes into an archive: header, then gzip, then encryption. The key is
 * derived (scrypt, asynchronously) first and wiped when the archive ends. An error on either
 * side travels through: the archive fails if the source does, and destroying the archive stops
 * the source.
 *
 * @example
 *   const archive = await sealArchive(ndjson, { exportId, createdAt: new Date(), passphrase });
 *   await pipeline(archive, fs.createWriteStream('export.cxa'));
 */
export async function sealArchive(
  source: Readable,
  o: {
    exportId: string;
    createdAt: Date;
    passphrase: string;
    /** Stronger (or, in unit tests, cheaper) scrypt parameters; within the reader's bounds. */
    kdf?: ScryptParams;
  },
): Promise<Readable> {
  checkPassphrase(o.passphrase);
  if (!UUID.test(o.exportId)) {
    throw new TypeError('export id must be a lowercase UUID');
  }
  const k = o.kdf ?? DEFAULT_KDF;
  checkKdf(k);
  const salt = randomBytes(16);
  const header: ArchiveHeader = {
    format: 'custos-export',
    version: ARCHIVE_VERSION,
    exportId: o.exportId,
    createdAt: o.createdAt.toISOString(),
    content: 'application/fhir+ndjson',
    compression: 'gzip',
    cipher: 'aes-256-gcm-stream',
    kdf: { name: 'scrypt', N: k.N, r: k.r, p: k.p, salt: salt.toString('base64'), keyLength: 32 },
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(PREFIX);
  ARCHIVE_MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(headerBytes.length, ARCHIVE_MAGIC.length);
  const key = await deriveKey(o.passphrase, salt, k);
  const encrypt = encryptStream(key, o.exportId, bindingOf(headerBytes, o.exportId));
  // encryptStream keeps its own reference; ours is wiped when the archive is done or destroyed.
  const wipe = () => key.fill(0);
  encrypt.once('close', wipe);
  let sent = false;
  const withHeader = new Transform({
    transform(chunk: Buffer, _e, done: TransformCallback) {
      if (!sent) {
        sent = true;
        this.push(Buffer.concat([prefix, headerBytes]));
      }
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      if (!sent) {
        sent = true;
        this.push(Buffer.concat([prefix, headerBytes]));
      }
      done();
    },
  });
  pipeline(source, createGzip(), encrypt, withHeader, () => {
    // Nothing to do: an error has destroyed every stage, the returned one included, with it.
  });
  return withHeader;
}

/** Parses and checks the clear header at the start of an archive. */
export function parseArchiveHeader(bytes: Buffer): ArchiveHeader {
  let h: ArchiveHeader;
  try {
    h = JSON.parse(bytes.toString('utf8')) as ArchiveHeader;
  } catch (e) {
    throw archiveError('header is not JSON', e);
  }
  if (
    h === null ||
    typeof h !== 'object' ||
    h.format !== 'custos-export' ||
    typeof h.exportId !== 'string' ||
    !UUID.test(h.exportId) ||
    h.compression !== 'gzip' ||
    h.cipher !== 'aes-256-gcm-stream' ||
    h.kdf?.name !== 'scrypt' ||
    h.kdf.keyLength !== 32 ||
    typeof h.kdf.salt !== 'string'
  ) {
    throw archiveError('not a Custos export archive');
  }
  if (h.version !== ARCHIVE_VERSION) {
    throw archiveError(
      `format version ${String(h.version)} is not supported (this Custos reads ${ARCHIVE_VERSION})`,
    );
  }
  checkKdf(h.kdf);
  return h;
}

/**
 * Opens an archive: reads and checks the header, derives the key, and returns the NDJSON as a
 * stream that fails (`CUSTOS_ERR_INTEGRITY`) on a wrong passphrase, a changed or truncated file:
 * every 64 KiB segment is authenticated before its plaintext is released, so what was read
 * before an error is an authentic prefix.
 *
 * @example
 *   const { header, content } = await openArchive(fs.createReadStream(file), passphrase);
 */
export async function openArchive(
  source: AsyncIterable<Buffer> | Readable,
  passphrase: string,
): Promise<{ header: ArchiveHeader; content: Readable }> {
  const it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let buf = Buffer.alloc(0);
  const need = async (n: number) => {
    while (buf.length < n) {
      const next = await it.next();
      if (next.done) {
        throw archiveError('file is too short');
      }
      buf = Buffer.concat([buf, next.value]);
    }
  };
  await need(PREFIX);
  if (!buf.subarray(0, ARCHIVE_MAGIC.length).equals(ARCHIVE_MAGIC)) {
    throw archiveError('not a Custos export archive');
  }
  const n = buf.readUInt32BE(ARCHIVE_MAGIC.length);
  if (n === 0 || n > MAX_HEADER) {
    throw archiveError('header length out of bounds');
  }
  await need(PREFIX + n + STREAM_HEADER_BYTES);
  const headerBytes = Buffer.from(buf.subarray(PREFIX, PREFIX + n));
  const header = parseArchiveHeader(headerBytes);
  if (keyIdOfBlob(buf.subarray(PREFIX + n)) !== header.exportId) {
    throw archiveError('ciphertext belongs to another export');
  }
  const key = await deriveKey(passphrase, Buffer.from(header.kdf.salt, 'base64'), header.kdf);
  const rest = buf.subarray(PREFIX + n);
  const ciphertext = Readable.from(
    (async function* () {
      yield rest;
      for (;;) {
        const next = await it.next();
        if (next.done) {
          return;
        }
        yield next.value;
      }
    })(),
  );
  const decrypt = decryptStream(key, bindingOf(headerBytes, header.exportId));
  const gunzip = createGunzip();
  const stop = () => {
    key.fill(0);
    ciphertext.destroy();
    decrypt.destroy();
  };
  const fail = (e: unknown) => {
    stop();
    if (!gunzip.destroyed) {
      gunzip.destroy(
        isCustosError(e, 'CUSTOS_ERR_INTEGRITY')
          ? archiveError('wrong passphrase, or the file was changed or cut short', e)
          : (e as Error),
      );
    }
  };
  ciphertext.once('error', fail);
  decrypt.once('error', fail);
  gunzip.once('close', stop);
  ciphertext.pipe(decrypt).pipe(gunzip);
  return { header, content: gunzip };
}
