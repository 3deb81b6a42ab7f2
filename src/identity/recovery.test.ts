import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatRecoveryCode,
  generateRecoveryCodes,
  hmacRecoveryHasher,
  matchRecoveryCode,
  normalizeRecoveryCode,
  RECOVERY_ALPHABET,
  RECOVERY_CODE_BITS,
  type RecoveryCodeHasher,
} from './recovery.ts';

const key = randomBytes(32);
const hasher = (userId = 'user-1'): RecoveryCodeHasher => hmacRecoveryHasher({ key, userId });

describe('recovery code generation', () => {
  it('carries at least 50 bits per code', () => {
    // Entropy: 10 symbols, each uniform over a 32-symbol alphabet (byte & 31 of a random byte;
    // 256 = 8 × 32, so no modulo bias): 10 × log2(32) = 10 × 5 = 50 bits per code.
    expect(RECOVERY_ALPHABET).toHaveLength(32);
    expect(new Set(RECOVERY_ALPHABET).size).toBe(32);
    expect(RECOVERY_CODE_BITS).toBe(50);
  });

  it('uses an alphabet without the ambiguous I, L, O and U', () => {
    expect(RECOVERY_ALPHABET).not.toMatch(/[ILOU]/);
  });

  it('shows ten codes as XXXXX-XXXXX, with one hash for each', () => {
    const { codes, hashes } = generateRecoveryCodes(hasher());
    expect(codes).toHaveLength(10);
    expect(hashes).toHaveLength(10);
    for (const code of codes) {
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    }
    for (const h of hashes) {
      expect(h).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('makes distinct codes within a set and across many sets', () => {
    const all = Array.from({ length: 500 }, () => generateRecoveryCodes(hasher(), 10).codes).flat();
    expect(new Set(all).size).toBe(all.length);
  });

  it('uses every symbol of the alphabet at roughly the same rate', () => {
    const counts = new Map<string, number>();
    const symbols = generateRecoveryCodes(hasher(), 100).codes.join('').replaceAll('-', '');
    for (const ch of symbols) {
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
    }
    // 1 000 symbols over 32: about 31 each; a biased generator would leave some at 0.
    expect(counts.size).toBe(32);
  });

  it('stores a keyed hash, never the code or its bare SHA-256', () => {
    const { codes, hashes } = generateRecoveryCodes(hasher());
    const normalized = normalizeRecoveryCode(codes[0]!)!;
    expect(hashes[0]).not.toContain(normalized);
    expect(hashes[0]).not.toBe(createHash('sha256').update(normalized).digest('hex'));
    expect(hashes[0]).toBe(hasher()(normalized));
    expect(hmacRecoveryHasher({ key: randomBytes(32), userId: 'user-1' })(normalized)).not.toBe(hashes[0]);
  });

  it('refuses a short key and silly counts', () => {
    expect(() => hmacRecoveryHasher({ key: randomBytes(16), userId: 'u' })).toThrow(/32 bytes/);
    expect(() => generateRecoveryCodes(hasher(), 0)).toThrow(/count/);
    expect(() => generateRecoveryCodes(hasher(), 1.5)).toThrow(/count/);
  });
});

describe('recovery code normalization', () => {
  it.each([
    ['the displayed form', '7K3QD-9XW2M'],
    ['lower case', '7k3qd-9xw2m'],
    ['a missing dash', '7K3QD9XW2M'],
    ['spaces around and inside', '  7K3QD 9XW2M '],
    ['a typographic dash', '7K3QD\u20139XW2M'],
    ['mixed grouping', '7k3 qd9-xw2m'],
  ])('accepts %s', (_label, input) => {
    expect(normalizeRecoveryCode(input)).toBe('7K3QD9XW2M');
  });

  it('reads I and L as 1 and O as 0 (Crockford decoding)', () => {
    expect(normalizeRecoveryCode('iLo00-11111')).toBe('1100011111');
  });

  it.each([
    ['too short', '7K3QD-9XW2'],
    ['too long', '7K3QD-9XW2MM'],
    ['the excluded U', 'UK3QD-9XW2M'],
    ['punctuation', '7K3QD.9XW2M'],
    ['non-ASCII letters', '7K3QD-9XW2É'],
    ['an empty string', ''],
    ['a huge input', `7K3QD-9XW2M${' '.repeat(10_000)}`],
  ])('rejects %s', (_label, input) => {
    expect(normalizeRecoveryCode(input)).toBeNull();
  });

  it('round-trips every generated code through format and normalize', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...RECOVERY_ALPHABET), { minLength: 10, maxLength: 10 }),
        (chars) => {
          const n = chars.join('');
          expect(normalizeRecoveryCode(formatRecoveryCode(n))).toBe(n);
          expect(normalizeRecoveryCode(formatRecoveryCode(n).toLowerCase())).toBe(n);
        },
      ),
    );
  });
});

describe('recovery code matching', () => {
  const { codes, hashes } = generateRecoveryCodes(hasher());

  it('finds the slot of a matching code, however it is typed', () => {
    expect(matchRecoveryCode(hasher(), codes[3]!, hashes)).toBe(3);
    expect(matchRecoveryCode(hasher(), codes[7]!.toLowerCase().replace('-', ' '), hashes)).toBe(7);
  });

  it('returns -1 for a code not in the set, or malformed input', () => {
    const other = generateRecoveryCodes(hasher()).codes[0]!;
    expect(matchRecoveryCode(hasher(), other, hashes)).toBe(-1);
    expect(matchRecoveryCode(hasher(), 'not a code', hashes)).toBe(-1);
    expect(matchRecoveryCode(hasher(), codes[0]!, [])).toBe(-1);
  });

  it('never matches a used slot', () => {
    const used = hashes.map((h, i) => (i === 3 ? null : h));
    expect(matchRecoveryCode(hasher(), codes[3]!, used)).toBe(-1);
    expect(matchRecoveryCode(hasher(), codes[4]!, used)).toBe(4);
  });

  it("does not accept one user's code for another user", () => {
    expect(matchRecoveryCode(hasher('user-2'), codes[0]!, hashes)).toBe(-1);
  });

  it('ignores stored values of the wrong length instead of throwing', () => {
    expect(matchRecoveryCode(hasher(), codes[1]!, ['abc', hashes[1]!])).toBe(1);
  });
});
