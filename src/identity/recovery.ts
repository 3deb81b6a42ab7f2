import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { CustosError } from '../errors.ts';

/**
 * Single-use recovery codes: the way back in when the authenticator is lost.
 *
 * Shape: 10 symbols of Crockford base32 (https://www.crockford.com/base32.html: 0-9 and A-Z
 * without I, L, O, U), shown as `XXXXX-XXXXX`. Each symbol is 5 uniform random bits, so a code
 * carries 10 × log2(32) = 50 bits; a set of 10 gives an online guesser a chance of
 * 10 / 2^50 ≈ 8.9 × 10⁻¹⁵ per attempt, and that only after the password. NIST SP 800-63B
 * §5.1.2 (look-up secrets) asks for at least 20 bits, and for rate limiting below 64 bits: the
 * recovery endpoint must share the sign-in rate limit.
 *
 * Storage: keyed HMAC-SHA-256 over (user id, code), neither a password hash nor a bare SHA-256.
 * - Why not a slow hash (Argon2): a slow hash makes guessing a *low*-entropy, human-chosen
 *   secret expensive. These are 50 random bits, and the server key below already puts offline
 *   guessing out of reach of anyone holding only the database; a slow hash would add ~50 ms of
 *   CPU per recovery attempt (a load lever for unauthenticated callers) for protection that
 *   matters only once the key file is stolen too, when the records themselves are lost anyway.
 * - Why not a bare SHA-256: 50 bits is not "high entropy" against an offline attacker with a
 *   database dump. Unsalted, one guess is tested against every stored hash at once: with 1 000
 *   users × 10 codes a GPU doing 10¹⁰ SHA-256/s finds *some* code in about
 *   2^50 / 10⁴ / 10¹⁰ ≈ 11 s. The user id in the input acts as a per-user salt (one user: ~3 h);
 *   the server key, which is not in the database (the keyring; SP 800-63B §5.1.1.2 recommends
 *   such a secret "pepper"), makes a dump alone useless. The user id also stops hashes being
 *   copied from one account to another.
 * - SP 800-63B §5.1.2.2 literally asks for a salted key-derivation function for look-up secrets
 *   under 112 bits. We meet its intent (offline resistance) with the key; the literal route is
 *   one Argon2 per attempt with a per-user salt, or 23-symbol (115-bit) codes.
 *
 * The hashing is injected as a {@link RecoveryCodeHasher}, so this module does not depend on the
 * keyring; {@link hmacRecoveryHasher} builds one from raw key bytes.
 */

/** Crockford base32: no I, L, O (look like 1 and 0) and no U (accidental words). */
export const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const RECOVERY_CODE_LENGTH = 10;
/** 10 symbols × 5 bits. */
export const RECOVERY_CODE_BITS = RECOVERY_CODE_LENGTH * Math.log2(RECOVERY_ALPHABET.length);

/**
 * Maps a normalized code (10 Crockford symbols, no dash) to the hex string stored for it. Must be
 * keyed and bound to the owning user; never a bare SHA-256 (see the module comment).
 */
export type RecoveryCodeHasher = (normalized: string) => string;

/**
 * HMAC-SHA-256 under `key`, over a domain-separated message naming the user, as lowercase hex.
 * The key is a 32-byte server secret that is not stored in the database
 * (`keyring.recoveryCodeKey()`). Changing that key invalidates every stored recovery code.
 *
 * @example
 * const hash = hmacRecoveryHasher({ key: keyring.recoveryCodeKey(), userId: user.id });
 * const { codes, hashes } = generateRecoveryCodes(hash);
 */
export function hmacRecoveryHasher(options: { key: Uint8Array; userId: string }): RecoveryCodeHasher {
  const { key, userId } = options;
  if (key.length < 32) {
    throw new CustosError('CUSTOS_ERR_CONFIG', 'the recovery-code key must be at least 32 bytes');
  }
  if (userId === '' || userId.includes('\u0000')) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'recovery codes need a user id without NUL');
  }
  const keyCopy = Buffer.from(key);
  return (normalized) =>
    createHmac('sha256', keyCopy)
      .update(`custos recovery code v1\u0000${userId}\u0000${normalized}`, 'utf8')
      .digest('hex');
}

/**
 * A fresh set of recovery codes: `codes` to show to the user once (formatted `XXXXX-XXXXX`) and
 * `hashes` to store, index for index. The codes themselves must not be stored or logged.
 *
 * @example
 * const { codes, hashes } = generateRecoveryCodes(hash);
 * // codes[0] === '7K3QD-9XW2M'; store hashes, show codes
 */
export function generateRecoveryCodes(
  hash: RecoveryCodeHasher,
  count = 10,
): { codes: string[]; hashes: string[] } {
  if (!Number.isSafeInteger(count) || count < 1 || count > 100) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'recovery code count must be between 1 and 100');
  }
  const seen = new Set<string>();
  while (seen.size < count) {
    // A duplicate is a 2^-50 event; skipping it keeps "every code in a set is distinct" a
    // guarantee rather than a probability.
    seen.add(randomCode());
  }
  const normalized = [...seen];
  return { codes: normalized.map(formatRecoveryCode), hashes: normalized.map((n) => hash(n)) };
}

/**
 * The canonical form of what a user typed, or `null` if it cannot be a recovery code: spaces and
 * dashes (including typographic dashes that word processors substitute) removed, upper-cased,
 * and Crockford's decoding aliases applied (I and L read as 1, O as 0), which are unambiguous
 * because those letters are never generated.
 *
 * @example
 * normalizeRecoveryCode(' 7k3qd 9xw2m '); // '7K3QD9XW2M'
 * normalizeRecoveryCode('7K3QD-9XW2');    // null (nine symbols)
 */
export function normalizeRecoveryCode(input: string): string | null {
  if (input.length > 64) {
    return null; // bound the work on attacker-controlled input
  }
  const compact = input
    .replace(/[\s\-\u2010-\u2015\u2212]/g, '')
    .toUpperCase()
    .replace(/[IL]/g, '1')
    .replace(/O/g, '0');
  if (compact.length !== RECOVERY_CODE_LENGTH) {
    return null;
  }
  for (const ch of compact) {
    if (!RECOVERY_ALPHABET.includes(ch)) {
      return null;
    }
  }
  return compact;
}

/** `XXXXXXXXXX` → `XXXXX-XXXXX`, for display. */
export function formatRecoveryCode(normalized: string): string {
  return `${normalized.slice(0, 5)}-${normalized.slice(5)}`;
}

/**
 * Index of the stored hash that `input` matches, or -1. `hashes` holds the user's codes in their
 * stored order with `null` for codes already used, so indexes stay stable; a used code never
 * matches. Every entry is compared with `timingSafeEqual`, without early exit, so the time taken
 * does not reveal which slot (if any) matched. The caller marks the returned slot used in the same
 * transaction that accepts the sign-in.
 *
 * @example
 * const i = matchRecoveryCode(hash, body.code, user.recoveryHashes);
 * if (i !== -1) await users.useRecoveryCode(user.id, i);
 */
export function matchRecoveryCode(
  hash: RecoveryCodeHasher,
  input: string,
  hashes: readonly (string | null)[],
): number {
  const normalized = normalizeRecoveryCode(input);
  if (normalized === null) {
    return -1;
  }
  const given = Buffer.from(hash(normalized), 'utf8');
  let found = -1;
  hashes.forEach((stored, i) => {
    if (stored === null) {
      return;
    }
    const candidate = Buffer.from(stored, 'utf8');
    // Lengths are not secret (all hashes have the same length); only contents are compared in
    // constant time.
    const equal = candidate.length === given.length && timingSafeEqual(candidate, given);
    if (equal && found === -1) {
      found = i;
    }
  });
  return found;
}

function randomCode(): string {
  // 256 is a multiple of 32, so `byte & 31` is uniform over the alphabet: no modulo bias.
  let out = '';
  for (const byte of randomBytes(RECOVERY_CODE_LENGTH)) {
    out += RECOVERY_ALPHABET[byte & 31];
  }
  return out;
}
