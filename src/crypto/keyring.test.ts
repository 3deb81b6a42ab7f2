import { createHash, createHmac, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Keyring, readKeyFile, writeKeyFile } from './keyring.ts';

describe('the keyring', () => {
  const keyring = new Keyring(Keyring.generate());

  it('makes blind indexes that are keyed: never an unkeyed hash of the value', () => {
    const value = 'synthetica|1984-05-06';
    const idx = keyring.blindIndex('family-birth', value);
    expect(idx).toHaveLength(16);
    for (const alg of ['sha256', 'sha512', 'sha1', 'md5']) {
      const h = createHash(alg).update(value).digest();
      expect(h.subarray(0, 16).equals(idx)).toBe(false);
    }
    expect(createHmac('sha256', '').update(value).digest().subarray(0, 16).equals(idx)).toBe(false);
    // Same value, same kind: same index; another kind or another keyring: different.
    expect(keyring.blindIndex('family-birth', value).equals(idx)).toBe(true);
    expect(keyring.blindIndex('email', value).equals(idx)).toBe(false);
    expect(new Keyring(Keyring.generate()).blindIndex('family-birth', value).equals(idx)).toBe(false);
  });

  it('wraps data keys so that they only unwrap for their own row', () => {
    const dek = Buffer.alloc(32, 7);
    const id = randomUUID();
    const { wrapped, kekId } = keyring.wrapDataKey(id, dek);
    expect(kekId).toBe(keyring.activeKekId);
    expect(keyring.unwrapDataKey(id, wrapped).equals(dek)).toBe(true);
    expect(() => keyring.unwrapDataKey(randomUUID(), wrapped)).toThrow(/integrity/);
  });

  it('writes the key file with mode 0600 and never overwrites one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-k-'));
    const file = path.join(dir, 'k', 'custos.keys');
    writeKeyFile(file, Keyring.generate());
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(() => writeKeyFile(file, Keyring.generate())).toThrow(/EEXIST/);
    expect(readKeyFile(path.join(dir, 'absent'))).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });

  it('has key check values that differ between keyrings and reveal no key', () => {
    const other = new Keyring(Keyring.generate());
    const a = new Map(keyring.checks().map((c) => [c.name.replace(/kcv\.kek\..*/, 'kek'), c.value]));
    const b = new Map(other.checks().map((c) => [c.name.replace(/kcv\.kek\..*/, 'kek'), c.value]));
    for (const name of ['kek', 'kcv.index', 'kcv.link', 'kcv.audit']) {
      expect(a.get(name)).toMatch(/^[0-9a-f]{32}$/);
      expect(a.get(name)).not.toBe(b.get(name));
    }
  });
});
