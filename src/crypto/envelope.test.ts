import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCustosError } from '../errors.ts';
import { type Binding, FORMAT_V1, keyIdOf, open, seal } from './envelope.ts';

const key = randomBytes(32);
const keyId = randomUUID();
const at: Binding = { table: 'record_versions', column: 'body', row: randomUUID(), version: 3 };

const integrityError = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (e) {
    return isCustosError(e, 'CUSTOS_ERR_INTEGRITY');
  }
};

describe('the envelope', () => {
  it('round-trips any plaintext and names its key id in the header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const blob = seal(key, keyId, at, Buffer.from(bytes));
        expect(blob[0]).toBe(FORMAT_V1);
        expect(keyIdOf(blob, at)).toBe(keyId);
        expect(open(key, at, blob).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it('fails with an integrity error when any single byte is changed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (bytes, pos, delta) => {
          const blob = seal(key, keyId, at, Buffer.from(bytes));
          const i = pos % blob.length;
          const tampered = Buffer.from(blob);
          tampered[i] = (tampered[i]! + delta) % 256;
          expect(integrityError(() => open(key, at, tampered))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('fails when the ciphertext is moved to another table, column, row or version', () => {
    const blob = seal(key, keyId, at, Buffer.from('synthetic'));
    for (const other of [
      { ...at, table: 'patient_versions' },
      { ...at, column: 'link' },
      { ...at, row: randomUUID() },
      { ...at, version: 4 },
    ]) {
      expect(integrityError(() => open(key, other, blob))).toBe(true);
    }
  });

  it('fails under another key, and on truncated or empty input', () => {
    const blob = seal(key, keyId, at, Buffer.from('synthetic'));
    expect(integrityError(() => open(randomBytes(32), at, blob))).toBe(true);
    expect(integrityError(() => open(key, at, blob.subarray(0, 20)))).toBe(true);
    expect(integrityError(() => open(key, at, Buffer.alloc(0)))).toBe(true);
  });

  it('uses a fresh nonce each time: the same plaintext never gives the same bytes', () => {
    const a = seal(key, keyId, at, Buffer.from('same'));
    const b = seal(key, keyId, at, Buffer.from('same'));
    expect(a.equals(b)).toBe(false);
  });
});
