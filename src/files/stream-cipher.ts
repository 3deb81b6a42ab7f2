import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { type Binding, bytesToUuid, uuidToBytes } from '../crypto/envelope.ts';
import { CustosError } from '../errors.ts';

/**
 * Streaming authenticated encryption for files: the STREAM construction (Hoang, Reyhanitabar,
 * Rogaway, Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
 * CRYPTO 2015) over AES-256-GCM from node:crypto. Same conventions as the one-shot envelope
 * (src/crypto/envelope.ts): versioned, carries the key id, and the associated data binds the
 * ciphertext to its table, column, row and version, so a blob cannot be moved to another row.
 *
 *   header (28 bytes, authenticated as associated data of every segment):
 *     byte 0        format (0x81: file stream, version 1; the envelope's formats are < 0x80)
 *     bytes 1..16   key id (UUID, raw bytes) of the patient's data key
 *     bytes 17..23  random 7-byte nonce prefix, fresh per blob
 *     bytes 24..27  plaintext segment size, uint32 big-endian (65536)
 *   segments: AES-256-GCM(plaintext segment) || tag(16), each with
 *     nonce = prefix(7) || segment counter (uint32 big-endian) || last flag (0x00 / 0x01)
 *     AAD   = header || table \0 column \0 row \0 version
 *
 * Every segment but the last holds exactly `segmentSize` plaintext bytes; the last holds
 * 0..segmentSize (0 only for an empty file) and is the only one sealed with the last flag. So a
 * flipped byte, a reordered, dropped or repeated segment (the counter is in the nonce), a cut
 * tail (no segment verifies with the last flag), appended bytes (the real last segment would
 * have to verify as a middle one), another key or another binding all fail the tag check.
 *
 * Decryption releases a segment's plaintext only after its tag has verified, so a consumer
 * never sees unauthenticated bytes; what it has received before an error is an authentic prefix.
 * Memory is one segment on each side, whatever the file's size. A random 56-bit prefix per blob
 * with a 32-bit counter keeps GCM nonces unique (the counter caps a blob at 2^32 segments).
 *
 * Rejected alternative: one GCM over the whole file. Node's decipher releases plaintext before
 * `final()` verifies the tag, so a streaming reader would hand out unverified bytes, and a
 * buffering reader would need the whole file in memory.
 */
export const STREAM_FORMAT_V1 = 0x81;
/** Bytes of the header: read this many to learn a blob's key id with {@link keyIdOfBlob}. */
export const STREAM_HEADER_BYTES = 28;
export const DEFAULT_SEGMENT_SIZE = 64 * 1024;
const MIN_SEGMENT = 64;
/** Upper bound accepted from a header, so a forged header cannot make a reader buffer much. */
const MAX_SEGMENT = 1024 * 1024;
const TAG = 16;
const MAX_SEGMENTS = 2 ** 32;

export interface EncryptOptions {
  /** Plaintext bytes per segment; 64 KiB unless a test wants many small segments. */
  readonly segmentSize?: number;
}

/** The error every decryption failure becomes: no data, no offsets, nothing about the content. */
export function fileIntegrityError(cause?: unknown): CustosError {
  return new CustosError('CUSTOS_ERR_INTEGRITY', 'stored file failed its integrity check', { cause });
}

function bindingBytes(at: Binding): Buffer {
  return Buffer.from(`${at.table}\0${at.column}\0${at.row}\0${at.version}`, 'utf8');
}

function nonce(prefix: Buffer, counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 7);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

function checkKey(key: Buffer): void {
  if (key.length !== 32) {
    throw new TypeError('data key must be 32 bytes');
  }
}

/**
 * The key id a blob's header names, so the gate knows which data key to unwrap. Throws
 * `CUSTOS_ERR_INTEGRITY` when the bytes are not a file-stream header.
 *
 * @example keyIdOfBlob(await readHeader(path)) // '0b6f…-…'
 */
export function keyIdOfBlob(header: Buffer): string {
  if (header.length < STREAM_HEADER_BYTES || header[0] !== STREAM_FORMAT_V1) {
    throw fileIntegrityError();
  }
  return bytesToUuid(header.subarray(1, 17));
}

/**
 * A Transform that encrypts a plaintext byte stream into the format above.
 *
 * @example await pipeline(source, encryptStream(key, keyId, at), createWriteStream(path));
 */
export function encryptStream(
  key: Buffer,
  keyId: string,
  at: Binding,
  options: EncryptOptions = {},
): Transform {
  checkKey(key);
  const segmentSize = options.segmentSize ?? DEFAULT_SEGMENT_SIZE;
  if (!Number.isInteger(segmentSize) || segmentSize < MIN_SEGMENT || segmentSize > MAX_SEGMENT) {
    throw new RangeError('segment size out of range');
  }
  const header = Buffer.alloc(STREAM_HEADER_BYTES);
  header[0] = STREAM_FORMAT_V1;
  uuidToBytes(keyId).copy(header, 1);
  randomBytes(7).copy(header, 17);
  header.writeUInt32BE(segmentSize, 24);
  const aad = Buffer.concat([header, bindingBytes(at)]);
  const prefix = header.subarray(17, 24);
  // One segment of plaintext: sealed as a middle segment only once a further byte proves it is
  // not the last, so a file of an exact multiple of the segment size ends in a full last segment.
  const segment = Buffer.alloc(segmentSize);
  let filled = 0;
  let counter = 0;
  let headerSent = false;

  const sealSegment = (stream: Transform, last: boolean): void => {
    if (counter >= MAX_SEGMENTS) {
      throw new RangeError('file too large for one stream');
    }
    const cipher = createCipheriv('aes-256-gcm', key, nonce(prefix, counter, last));
    cipher.setAAD(aad);
    const body = cipher.update(segment.subarray(0, filled));
    cipher.final();
    stream.push(body);
    stream.push(cipher.getAuthTag());
    counter += 1;
    filled = 0;
  };
  const sendHeader = (stream: Transform): void => {
    if (!headerSent) {
      stream.push(Buffer.from(header));
      headerSent = true;
    }
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      try {
        sendHeader(this);
        let at = 0;
        while (at < chunk.length) {
          if (filled === segmentSize) {
            sealSegment(this, false);
          }
          const n = Math.min(segmentSize - filled, chunk.length - at);
          chunk.copy(segment, filled, at, at + n);
          filled += n;
          at += n;
        }
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        sendHeader(this);
        sealSegment(this, true);
        segment.fill(0);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    destroy(error, done) {
      segment.fill(0);
      done(error);
    },
  });
}

/**
 * A Transform that authenticates and decrypts a blob written by {@link encryptStream} with the
 * same key and binding. Any failure is a stream error `CUSTOS_ERR_INTEGRITY` with no detail;
 * plaintext of a segment is pushed only after its tag verified.
 *
 * @example await pipeline(createReadStream(path), decryptStream(key, at), response);
 */
export function decryptStream(key: Buffer, at: Binding): Transform {
  checkKey(key);
  const header = Buffer.alloc(STREAM_HEADER_BYTES);
  let headerFilled = 0;
  let aad: Buffer | undefined;
  let prefix: Buffer | undefined;
  let segment: Buffer | undefined; // one ciphertext segment: segmentSize + tag
  let filled = 0;
  let counter = 0;

  const openSegment = (stream: Transform, last: boolean): void => {
    if (!segment || !prefix || !aad || filled < TAG || counter >= MAX_SEGMENTS) {
      throw fileIntegrityError();
    }
    const body = segment.subarray(0, filled - TAG);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce(prefix, counter, last));
      decipher.setAAD(aad);
      decipher.setAuthTag(segment.subarray(filled - TAG, filled));
      plain = decipher.update(body);
      decipher.final(); // throws on a bad tag; `plain` is dropped unseen
    } catch (e) {
      throw fileIntegrityError(e);
    }
    stream.push(plain);
    counter += 1;
    filled = 0;
  };

  const takeHeader = (chunk: Buffer, from: number): number => {
    const n = Math.min(STREAM_HEADER_BYTES - headerFilled, chunk.length - from);
    chunk.copy(header, headerFilled, from, from + n);
    headerFilled += n;
    if (headerFilled === STREAM_HEADER_BYTES) {
      keyIdOfBlob(header);
      const segmentSize = header.readUInt32BE(24);
      if (segmentSize < MIN_SEGMENT || segmentSize > MAX_SEGMENT) {
        throw fileIntegrityError();
      }
      aad = Buffer.concat([header, bindingBytes(at)]);
      prefix = header.subarray(17, 24);
      segment = Buffer.alloc(segmentSize + TAG);
    }
    return from + n;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      try {
        let at = 0;
        if (!segment) {
          at = takeHeader(chunk, 0);
        }
        while (segment && at < chunk.length) {
          if (filled === segment.length) {
            openSegment(this, false);
          }
          const n = Math.min(segment.length - filled, chunk.length - at);
          chunk.copy(segment, filled, at, at + n);
          filled += n;
          at += n;
        }
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        openSegment(this, true);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
}
