import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Binding } from '../crypto/envelope.ts';
import { isCustosError } from '../errors.ts';
import { BlobStore } from './blob-store.ts';
import { fakeExecutable, pngText, tinyJpeg, tinyPdf, tinyPng, tinyZip } from './fixtures.ts';
import { sanitizeFileName } from './names.ts';
import { FileRejectedError } from './rejection.ts';

const key = randomBytes(32);
const keyId = randomUUID();
const binding = (row = randomUUID()): Binding => ({ table: 'documents', column: 'content', row, version: 1 });

let root: string;
let store: BlobStore;

beforeAll(async () => {
  root = path.join(await mkdtemp(path.join(tmpdir(), 'custos-blobs-')), 'blobs');
  store = await BlobStore.open(root);
});

afterAll(async () => {
  await rm(path.dirname(root), { recursive: true, force: true });
});

const source = (b: Buffer, chunk = 16 * 1024): Readable => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += chunk) {
    parts.push(b.subarray(i, i + chunk));
  }
  return Readable.from(parts);
};

async function readAll(stream: Readable): Promise<{ data: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  try {
    await pipeline(
      stream,
      new Writable({
        write(chunk: Buffer, _e, done) {
          out.push(chunk);
          done();
        },
      }),
    );
    return { data: Buffer.concat(out), error: undefined };
  } catch (error) {
    return { data: Buffer.concat(out), error };
  }
}

/** Every file under `dir`, as paths relative to it. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('the blob store', () => {
  it('creates its folders with mode 0700', async () => {
    expect((await stat(root)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(root, 'tmp'))).mode & 0o777).toBe(0o700);
  });

  it.each<[string, Buffer, string]>([
    ['a PDF', tinyPdf(), 'application/pdf'],
    ['a PNG', tinyPng(), 'image/png'],
    ['a JPEG', tinyJpeg(), 'image/jpeg'],
    ['a text of several segments', Buffer.from('Line of a synthetic letter.\n'.repeat(10_000)), 'text/plain'],
  ])('stores and returns %s, encrypted, under a random fan-out path', async (_name, content, type) => {
    const at = binding();
    const stored = await store.write(source(content), { key, keyId, binding: at });
    expect(stored).toEqual({
      blobId: expect.stringMatching(/^[0-9a-f]{32}$/),
      size: content.length,
      sha256: sha256(content),
      contentType: type,
    });
    const file = path.join(root, stored.blobId.slice(0, 2), stored.blobId.slice(2, 4), stored.blobId);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(path.dirname(path.dirname(file)))).mode & 0o777).toBe(0o700);
    const onDisk = await readFile(file);
    expect(onDisk.includes(content.subarray(0, 64))).toBe(false);
    expect(await store.keyIdOf(stored.blobId)).toBe(keyId);

    const { data, error } = await readAll(
      await store.read(stored.blobId, { key, binding: at, expect: stored }),
    );
    expect(error).toBeUndefined();
    expect(data.equals(content)).toBe(true);
  });

  it('refuses spoofed files with a validation error and leaves nothing on disk', async () => {
    const before = await files(root);
    const cases: [Buffer, string][] = [
      [fakeExecutable(), 'file: type not allowed (executable)'],
      [Buffer.concat([tinyPng(), tinyZip()]), 'file: type not allowed (polyglot)'],
      [
        Buffer.concat([tinyJpeg(), Buffer.from('<html><script>alert(1)</script></html>')]),
        'file: type not allowed (polyglot)',
      ],
      [
        Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        'file: type not allowed (svg)',
      ],
      [tinyZip(), 'file: type not allowed (archive)'],
      [Buffer.alloc(0), 'file: empty'],
    ];
    for (const [content, message] of cases) {
      const error = await store
        .write(source(content), { key, keyId, binding: binding() })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FileRejectedError);
      expect(isCustosError(error, 'CUSTOS_ERR_VALIDATION')).toBe(true);
      expect((error as FileRejectedError).field).toBe('file');
      expect((error as FileRejectedError).message).toBe(message);
    }
    expect(await files(root)).toEqual(before);
  });

  it('stops reading an oversized upload as soon as it passes the limit', async () => {
    const before = await files(root);
    let produced = 0;
    const endless = Readable.from(
      (function* () {
        const line = Buffer.from(`${'x'.repeat(1023)}\n`);
        const chunk = Buffer.concat(new Array(64).fill(line)); // 64 KiB of text
        for (;;) {
          produced += chunk.length;
          yield chunk;
        }
      })(),
    );
    const limit = 1024 * 1024;
    const error = await store
      .write(endless, { key, keyId, binding: binding(), limit })
      .catch((e: unknown) => e);
    expect((error as FileRejectedError).reason).toBe('too-large');
    expect(produced).toBeLessThanOrEqual(limit + 4 * 64 * 1024); // the limit plus what the stream had buffered
    expect(endless.destroyed).toBe(true);
    expect(await files(root)).toEqual(before);
  });

  it('removes the temp file when the source fails or onType refuses', async () => {
    const before = await files(root);
    const failing = Readable.from(
      (async function* () {
        yield Buffer.from('first part of a letter\n'.repeat(5000));
        throw new Error('client went away');
      })(),
    );
    await expect(store.write(failing, { key, keyId, binding: binding() })).rejects.toThrow(
      'client went away',
    );
    for (let i = 0; i < 20; i++) {
      // Fails before the temp file has even finished opening.
      const early = new Readable({
        read() {
          this.destroy(new Error('client went away at once'));
        },
      });
      await expect(store.write(early, { key, keyId, binding: binding() })).rejects.toThrow('at once');
    }
    const seen: string[] = [];
    const refused = store.write(source(tinyPdf()), {
      key,
      keyId,
      binding: binding(),
      onType: (type) => {
        seen.push(type);
        throw new FileRejectedError('not-allowed');
      },
    });
    await expect(refused).rejects.toThrow('file: type not allowed (not-allowed)');
    expect(seen).toEqual(['application/pdf']);
    expect(await files(root)).toEqual(before);
  });

  it('fails to read a tampered blob, another row’s binding or another key', async () => {
    const at = binding();
    const content = Buffer.from('Synthetic discharge letter.\n'.repeat(8000));
    const stored = await store.write(source(content), { key, keyId, binding: at });
    const file = path.join(root, stored.blobId.slice(0, 2), stored.blobId.slice(2, 4), stored.blobId);
    const original = await readFile(file);

    for (const other of [binding(), { ...at, version: 2 }]) {
      const { error } = await readAll(await store.read(stored.blobId, { key, binding: other }));
      expect(isCustosError(error, 'CUSTOS_ERR_INTEGRITY')).toBe(true);
    }
    const wrongKey = await readAll(await store.read(stored.blobId, { key: randomBytes(32), binding: at }));
    expect(isCustosError(wrongKey.error, 'CUSTOS_ERR_INTEGRITY')).toBe(true);

    const flipped = Buffer.from(original);
    flipped[original.length - 100] = (flipped[original.length - 100] ?? 0) ^ 1;
    await writeFile(file, flipped);
    const tampered = await readAll(await store.read(stored.blobId, { key, binding: at }));
    expect(isCustosError(tampered.error, 'CUSTOS_ERR_INTEGRITY')).toBe(true);
    expect(content.subarray(0, tampered.data.length).equals(tampered.data)).toBe(true); // an authentic prefix only
    expect(tampered.data.length).toBeLessThan(content.length);

    await writeFile(file, original.subarray(0, original.length - 16));
    const cut = await readAll(await store.read(stored.blobId, { key, binding: at }));
    expect(isCustosError(cut.error, 'CUSTOS_ERR_INTEGRITY')).toBe(true);

    await writeFile(file, Buffer.from('not a blob at all, just some bytes'));
    await expect(store.read(stored.blobId, { key, binding: at })).rejects.toThrow('integrity');
  });

  it('holds the last chunk back until the expected size and hash match', async () => {
    const at = binding();
    const content = Buffer.from('A short synthetic note.\n');
    const stored = await store.write(source(content), { key, keyId, binding: at });
    for (const expectation of [
      { size: stored.size + 1, sha256: stored.sha256 },
      { size: stored.size, sha256: sha256(Buffer.from('other')) },
    ]) {
      const { data, error } = await readAll(
        await store.read(stored.blobId, { key, binding: at, expect: expectation }),
      );
      expect(isCustosError(error, 'CUSTOS_ERR_INTEGRITY')).toBe(true);
      expect(data.length).toBe(0);
    }
  });

  it('treats malformed ids as not found, so no id reaches outside the root', async () => {
    for (const id of [
      '../../etc/passwd',
      '../tmp',
      'ab/cd/ef',
      '',
      'A'.repeat(32),
      `${'a'.repeat(31)}/`,
      '0'.repeat(33),
    ]) {
      await expect(store.read(id, { key, binding: binding() })).rejects.toSatisfy((e) =>
        isCustosError(e, 'CUSTOS_ERR_NOT_FOUND'),
      );
      await expect(store.keyIdOf(id)).rejects.toSatisfy((e) => isCustosError(e, 'CUSTOS_ERR_NOT_FOUND'));
      await expect(store.remove(id)).rejects.toSatisfy((e) => isCustosError(e, 'CUSTOS_ERR_NOT_FOUND'));
    }
    await expect(store.read('0'.repeat(32), { key, binding: binding() })).rejects.toThrow(
      'file not found or no access',
    );
  });

  it('removes a blob', async () => {
    const stored = await store.write(source(tinyPng()), { key, keyId, binding: binding() });
    expect(await store.remove(stored.blobId)).toBe(true);
    expect(await store.remove(stored.blobId)).toBe(false);
    await expect(store.keyIdOf(stored.blobId)).rejects.toThrow('not found');
  });

  it('clears uploads abandoned for more than a day when opened', async () => {
    const tmp = path.join(root, 'tmp');
    await writeFile(path.join(tmp, 'old.part'), 'x');
    await writeFile(path.join(tmp, 'fresh.part'), 'y');
    const dayAndABitAgo = (Date.now() - 25 * 60 * 60 * 1000) / 1000;
    await utimes(path.join(tmp, 'old.part'), dayAndABitAgo, dayAndABitAgo);
    await BlobStore.open(root);
    expect(await readdir(tmp)).toEqual(['fresh.part']);
    await rm(path.join(tmp, 'fresh.part'));
  });
});

describe('the blob folder holds no plaintext', () => {
  it('has no trace of contents or names after storing marked files', async () => {
    const scanRoot = path.join(path.dirname(root), 'scan');
    const scanned = await BlobStore.open(scanRoot);
    const marker = (kind: string): string => `CUSTOSMARK${kind}${randomBytes(6).toString('hex')}`;
    const uploads = [
      { name: `Arztbrief ${marker('NAMEPDF')}.pdf`, mark: marker('PDF'), make: (m: string) => tinyPdf(m) },
      {
        name: `${marker('NAMEPNG')}.png`,
        mark: marker('PNG'),
        make: (m: string) => tinyPng([pngText('Comment', m)]),
      },
      { name: `${marker('NAMEJPG')}.jpg`, mark: marker('JPG'), make: (m: string) => tinyJpeg(m) },
      {
        name: `${marker('NAMETXT')}.txt`,
        mark: marker('TXT'),
        make: (m: string) => Buffer.from(`${m}\n`.repeat(3000)),
      },
    ];
    const needles: Buffer[] = [];
    for (const u of uploads) {
      const content = u.make(u.mark);
      expect(content.includes(u.mark)).toBe(true); // the marker really is in the plaintext
      // The gate seals the sanitized name into the document row; the store never receives it.
      const name = sanitizeFileName(u.name);
      await scanned.write(source(content), { key, keyId, binding: binding() });
      for (const s of [u.mark, name, name.replace(/\.\w+$/, '')]) {
        needles.push(
          Buffer.from(s, 'utf8'),
          Buffer.from(s, 'utf16le'),
          Buffer.from(Buffer.from(s).toString('base64').slice(0, 16)),
        );
      }
    }

    const stored = await files(scanRoot);
    expect(stored).toHaveLength(uploads.length);
    for (const rel of stored) {
      expect(rel).toMatch(/^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{32}$/); // ids only: no name, type or patient
      const bytes = Buffer.concat([Buffer.from(rel), await readFile(path.join(scanRoot, rel))]);
      const hits = needles.filter((n) => bytes.includes(n));
      expect(hits.map((h) => h.toString('latin1'))).toEqual([]);
    }

    // The control: the same scan finds a marker that is stored in the clear.
    const leak = path.join(scanRoot, 'tmp', 'control.part');
    await writeFile(leak, Buffer.concat([Buffer.from('header'), needles[0]!]));
    expect((await readFile(leak)).includes(needles[0]!)).toBe(true);
    await rm(leak);
  });
});
