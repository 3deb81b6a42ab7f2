import { randomBytes, randomUUID } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Binding } from '../crypto/envelope.ts';
import { isCustosError } from '../errors.ts';
import {
  DEFAULT_SEGMENT_SIZE,
  decryptStream,
  encryptStream,
  keyIdOfBlob,
  STREAM_FORMAT_V1,
  STREAM_HEADER_BYTES,
} from './stream-cipher.ts';

const key = randomBytes(32);
const keyId = randomUUID();
const at: Binding = { table: 'documents', column: 'content', row: randomUUID(), version: 1 };
const SEG = DEFAULT_SEGMENT_SIZE;
const TAG = 16;

/** Splits `data` into chunks of the given sizes (cycled), as a network or disk would. */
function chunked(data: Buffer, sizes: readonly number[] = [data.length || 1]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0, k = 0; i < data.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length] ?? 1);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

async function through(chunks: readonly Buffer[], transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    transform,
    new Writable({
      write(chunk: Buffer, _e, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, segmentSize?: number, sizes?: number[]): Promise<Buffer> =>
  through(chunked(plain, sizes), encryptStream(key, keyId, at, segmentSize ? { segmentSize } : {}));

/** Decrypts; returns what was emitted before an error, and the error. */
async function decrypt(
  blob: Buffer,
  options: { key?: Buffer; at?: Binding; sizes?: number[] } = {},
): Promise<{ plain: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  try {
    await pipeline(
      Readable.from(chunked(blob, options.sizes)),
      decryptStream(options.key ?? key, options.at ?? at),
      new Writable({
        write(chunk: Buffer, _e, done) {
          out.push(chunk);
          done();
        },
      }),
    );
    return { plain: Buffer.concat(out), error: undefined };
  } catch (error) {
    return { plain: Buffer.concat(out), error };
  }
}

const isIntegrity = (e: unknown): boolean =>
  isCustosError(e, 'CUSTOS_ERR_INTEGRITY') && e.message === 'stored file failed its integrity check';

/** Ciphertext segments of a blob written with segment size `seg`. */
function segments(blob: Buffer, seg: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = STREAM_HEADER_BYTES; i < blob.length; i += seg + TAG) {
    out.push(blob.subarray(i, Math.min(blob.length, i + seg + TAG)));
  }
  return out;
}

describe('the file stream cipher', () => {
  it.each([0, 1, 1000, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 5, 4 * SEG])(
    'round-trips %i bytes, one segment per 64 KiB',
    async (n) => {
      const plain = randomBytes(n);
      const blob = await encrypt(plain, undefined, [1000, 70_000, 1, 4096]);
      const expectedSegments = Math.max(1, Math.ceil(n / SEG));
      expect(blob.length).toBe(STREAM_HEADER_BYTES + n + TAG * expectedSegments);
      expect(blob[0]).toBe(STREAM_FORMAT_V1);
      expect(blob.readUInt32BE(24)).toBe(SEG);
      expect(keyIdOfBlob(blob.subarray(0, STREAM_HEADER_BYTES))).toBe(keyId);
      const { plain: back, error } = await decrypt(blob, { sizes: [7, 65_552, 100_000] });
      expect(error).toBeUndefined();
      expect(back.equals(plain)).toBe(true);
    },
  );

  it('round-trips any plaintext, segment size and chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 64, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        async (bytes, seg, inSizes, outSizes) => {
          const plain = Buffer.from(bytes);
          const blob = await encrypt(plain, seg, inSizes);
          const { plain: back, error } = await decrypt(blob, { sizes: outSizes });
          expect(error).toBeUndefined();
          expect(back.equals(plain)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('uses a fresh nonce prefix for every blob', async () => {
    const a = await encrypt(Buffer.from('same'));
    const b = await encrypt(Buffer.from('same'));
    expect(a.subarray(17, 24).equals(b.subarray(17, 24))).toBe(false);
    expect(a.subarray(STREAM_HEADER_BYTES).equals(b.subarray(STREAM_HEADER_BYTES))).toBe(false);
  });

  it('fails on every single flipped byte, header included', async () => {
    const blob = await encrypt(randomBytes(300), 64); // 5 segments: 4 full, 1 of 44 bytes
    for (let i = 0; i < blob.length; i++) {
      const tampered = Buffer.from(blob);
      tampered[i] = (tampered[i] ?? 0) ^ 0x01;
      const { error } = await decrypt(tampered);
      expect(isIntegrity(error), `byte ${i}`).toBe(true);
    }
  });

  it('fails on every truncation, including cuts at segment boundaries', async () => {
    const blob = await encrypt(randomBytes(256), 64); // 4 full segments, the last one full
    for (let n = 0; n < blob.length; n++) {
      const { error } = await decrypt(blob.subarray(0, n));
      expect(isIntegrity(error), `cut to ${n} bytes`).toBe(true);
    }
  });

  it('fails when segments are reordered, duplicated, dropped or appended to', async () => {
    const seg = 64;
    const blob = await encrypt(randomBytes(4 * seg + 10), seg);
    const header = blob.subarray(0, STREAM_HEADER_BYTES);
    const [s0, s1, s2, s3, last] = segments(blob, seg) as [Buffer, Buffer, Buffer, Buffer, Buffer];
    const variants: Record<string, Buffer[]> = {
      swapped: [s1, s0, s2, s3, last],
      duplicated: [s0, s0, s1, s2, s3, last],
      'middle dropped': [s0, s2, s3, last],
      'last dropped': [s0, s1, s2, s3],
      'last repeated': [s0, s1, s2, s3, last, last],
      'byte appended': [s0, s1, s2, s3, last, Buffer.from([0])],
      'segment appended': [s0, s1, s2, s3, last, s1],
    };
    for (const [name, parts] of Object.entries(variants)) {
      const { error } = await decrypt(Buffer.concat([header, ...parts]));
      expect(isIntegrity(error), name).toBe(true);
    }
  });

  it('fails with a splice of two blobs under the same key and binding', async () => {
    const seg = 64;
    const a = await encrypt(randomBytes(3 * seg), seg);
    const b = await encrypt(randomBytes(3 * seg), seg);
    const spliced = Buffer.concat([
      a.subarray(0, STREAM_HEADER_BYTES + seg + TAG),
      b.subarray(STREAM_HEADER_BYTES + seg + TAG),
    ]);
    expect(isIntegrity((await decrypt(spliced)).error)).toBe(true);
  });

  it('fails under another table, column, row, version or key', async () => {
    const blob = await encrypt(Buffer.from('synthetic exam report'));
    for (const other of [
      { ...at, table: 'patient_versions' },
      { ...at, column: 'name' },
      { ...at, row: randomUUID() },
      { ...at, version: 2 },
    ]) {
      expect(isIntegrity((await decrypt(blob, { at: other })).error)).toBe(true);
    }
    expect(isIntegrity((await decrypt(blob, { key: randomBytes(32) })).error)).toBe(true);
  });

  it('fails when the header names another key id or segment size', async () => {
    const blob = await encrypt(randomBytes(200), 64);
    const otherId = Buffer.from(blob);
    Buffer.from(randomUUID().replace(/-/g, ''), 'hex').copy(otherId, 1);
    expect(isIntegrity((await decrypt(otherId)).error)).toBe(true);
    const otherSize = Buffer.from(blob);
    otherSize.writeUInt32BE(128, 24);
    expect(isIntegrity((await decrypt(otherSize)).error)).toBe(true);
    const huge = Buffer.from(blob);
    huge.writeUInt32BE(0xffffffff, 24); // would make a reader buffer 4 GiB: refused before that
    expect(isIntegrity((await decrypt(huge)).error)).toBe(true);
  });

  it('never emits a segment before its tag verifies: only the authentic prefix comes out', async () => {
    const seg = 64;
    const plain = randomBytes(3 * seg + 1);
    const blob = await encrypt(plain, seg);
    const inFirst = Buffer.from(blob);
    inFirst[STREAM_HEADER_BYTES + 3] = (inFirst[STREAM_HEADER_BYTES + 3] ?? 0) ^ 0x80;
    const first = await decrypt(inFirst);
    expect(isIntegrity(first.error)).toBe(true);
    expect(first.plain.length).toBe(0);

    const inThird = Buffer.from(blob);
    const third = STREAM_HEADER_BYTES + 2 * (seg + TAG) + 5;
    inThird[third] = (inThird[third] ?? 0) ^ 0x80;
    const partial = await decrypt(inThird, { sizes: [blob.length] }); // all bytes in one chunk
    expect(isIntegrity(partial.error)).toBe(true);
    expect(partial.plain.equals(plain.subarray(0, 2 * seg))).toBe(true);
  });

  it('reads the key id from a header and refuses anything else', () => {
    expect(() => keyIdOfBlob(Buffer.alloc(10))).toThrow('integrity');
    const wrongFormat = Buffer.alloc(STREAM_HEADER_BYTES);
    wrongFormat[0] = 1; // the one-shot envelope's version byte
    expect(() => keyIdOfBlob(wrongFormat)).toThrow('integrity');
  });

  it('refuses keys that are not 256 bits', () => {
    expect(() => encryptStream(randomBytes(16), keyId, at)).toThrow(TypeError);
    expect(() => decryptStream(randomBytes(31), at)).toThrow(TypeError);
  });
});
