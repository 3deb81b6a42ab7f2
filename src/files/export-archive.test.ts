import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isCustosError } from '../errors.ts';
import { ARCHIVE_MAGIC, openArchive, parseArchiveHeader, sealArchive } from './export-archive.ts';

/** Cheap scrypt parameters for unit tests (the default, 2^17, is exercised by the HTTP suite). */
const KDF = { N: 2 ** 10, r: 8, p: 1 };
const PASS = 'synthetic correct horse battery';
const MARKER = 'Synthetica-archive-marker';

const collect = async (s: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of s) {
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
};

async function seal(text: string, exportId = randomUUID(), passphrase = PASS) {
  const archive = await sealArchive(Readable.from([Buffer.from(text, 'utf8')]), {
    exportId,
    createdAt: new Date('2026-11-23T09:00:00Z'),
    passphrase,
    kdf: KDF,
  });
  return { exportId, bytes: await collect(archive) };
}

const open = async (bytes: Buffer, passphrase = PASS) => {
  const { header, content } = await openArchive(Readable.from([bytes]), passphrase);
  return { header, text: (await collect(content)).toString('utf8') };
};

const integrity = (e: unknown) => isCustosError(e, 'CUSTOS_ERR_INTEGRITY');

describe('export archive', () => {
  const ndjson = Array.from(
    { length: 2000 },
    (_, i) => `{"resourceType":"Patient","id":"${i}","name":[{"family":"${MARKER}"}]}`,
  ).join('\n');

  it('round-trips NDJSON, with the export id and the KDF parameters in the header', async () => {
    const { exportId, bytes } = await seal(ndjson);
    expect(bytes.subarray(0, 8).equals(ARCHIVE_MAGIC)).toBe(true);
    const { header, text } = await open(bytes);
    expect(text).toBe(ndjson);
    expect(header).toMatchObject({
      format: 'custos-export',
      version: 1,
      exportId,
      createdAt: '2026-11-23T09:00:00.000Z',
      content: 'application/fhir+ndjson',
      compression: 'gzip',
      kdf: { name: 'scrypt', N: 1024, r: 8, p: 1, keyLength: 32 },
    });
  });

  it('holds no plaintext: neither the marker nor the passphrase appears in the bytes', async () => {
    const { bytes } = await seal(ndjson);
    for (const needle of [MARKER, PASS, 'Patient', 'resourceType']) {
      expect(bytes.includes(Buffer.from(needle, 'utf8')), needle).toBe(false);
    }
  });

  it('round-trips an empty export and a passphrase in another normalization form', async () => {
    const { bytes } = await seal('', randomUUID(), 'ｆｕｌｌｗｉｄｔｈ passphrase 16+');
    expect((await open(bytes, 'fullwidth passphrase 16+')).text).toBe('');
  });

  it('refuses a wrong passphrase, a flipped byte anywhere, a cut tail and appended bytes', async () => {
    const { bytes } = await seal(ndjson);
    await expect(open(bytes, 'another passphrase entirely')).rejects.toSatisfy(integrity);
    // A byte of the clear header (the creation time), of the cipher stream's header, of the body.
    const headerEnd = 12 + bytes.readUInt32BE(8);
    const createdAt = bytes.indexOf('2026-11-23');
    for (const at of [createdAt, headerEnd + 20, headerEnd + 100, bytes.length - 1]) {
      const bad = Buffer.from(bytes);
      bad[at] = (bad[at] ?? 0) ^ 0x01;
      await expect(open(bad), `byte ${at}`).rejects.toSatisfy(integrity);
    }
    await expect(open(bytes.subarray(0, bytes.length - 10))).rejects.toSatisfy(integrity);
    await expect(open(Buffer.concat([bytes, Buffer.from('x')]))).rejects.toSatisfy(integrity);
  });

  it('refuses a segment moved from another archive with the same passphrase', async () => {
    const a = await seal(ndjson);
    const b = await seal(ndjson);
    // b's ciphertext after a's header: another export id and salt, so it cannot verify.
    const aHead = 12 + a.bytes.readUInt32BE(8);
    const bHead = 12 + b.bytes.readUInt32BE(8);
    const spliced = Buffer.concat([a.bytes.subarray(0, aHead), b.bytes.subarray(bHead)]);
    await expect(open(spliced)).rejects.toSatisfy(integrity);
  });

  it('refuses foreign files and forged key-derivation parameters before deriving anything', async () => {
    await expect(open(Buffer.from('PK\u0003\u0004 not an archive at all'))).rejects.toThrow(
      /not a Custos export archive/,
    );
    const header = (kdf: object) =>
      Buffer.from(
        JSON.stringify({
          format: 'custos-export',
          version: 1,
          exportId: randomUUID(),
          createdAt: '2026-11-23T09:00:00Z',
          content: 'application/fhir+ndjson',
          compression: 'gzip',
          cipher: 'aes-256-gcm-stream',
          kdf: { name: 'scrypt', salt: 'AAAA', keyLength: 32, ...kdf },
        }),
      );
    expect(() => parseArchiveHeader(header({ N: 2 ** 30, r: 8, p: 1 }))).toThrow(/out of bounds/);
    expect(() => parseArchiveHeader(header({ N: 1000, r: 8, p: 1 }))).toThrow(/out of bounds/);
    expect(() => parseArchiveHeader(header({ N: 2 ** 20, r: 16, p: 4 }))).toThrow(/out of bounds/);
    expect(parseArchiveHeader(header(KDF)).kdf.N).toBe(1024);
  });

  it('refuses a short passphrase, naming the field and never the value', async () => {
    const e = await sealArchive(Readable.from([]), {
      exportId: randomUUID(),
      createdAt: new Date(),
      passphrase: 'short secret',
      kdf: KDF,
    }).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_VALIDATION')).toBe(true);
    expect((e as Error).message).toBe('passphrase: must have at least 16 characters');
  });
});
