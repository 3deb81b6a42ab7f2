import type { Algorithm, ParsedHashOptions, Version } from '@node-rs/argon2';
import { hash, parseOptions, verify } from '@node-rs/argon2';

// `Algorithm` and `Version` are ambient const enums, which `verbatimModuleSyntax` cannot
// inline, so the two values are spelled out (argon2 RFC 9106: argon2id = 2, version 0x13).
const ARGON2ID = 2 as Algorithm;
const V0X13 = 1 as Version;
/** Library defaults, stated so `needsRehash` can compare against them: 16-byte salt, 32-byte tag. */
const SALT_LEN = 16;
const OUTPUT_LEN = 32;

/** Argon2id cost parameters. */
export interface PasswordHasherOptions {
  /** Memory in KiB (`m=`). Default 19456 (19 MiB), the OWASP minimum for argon2id. */
  readonly memoryCost?: number;
  /** Passes over memory (`t=`). Default 2. */
  readonly timeCost?: number;
  /** Lanes (`p=`). Default 1. */
  readonly parallelism?: number;
}

/** Result of checking a password against a stored hash. */
export interface PasswordVerification {
  readonly ok: boolean;
  /**
   * True when the password matched and the stored hash was made with weaker settings than the
   * current ones: the caller should store `hash(password)` now, while it has the plaintext.
   * Always false when `ok` is false.
   */
  readonly needsRehash: boolean;
}

function checkInteger(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${field} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * Hashes and verifies passwords with argon2id (RFC 9106) at OWASP Password Storage Cheat
 * Sheet settings (m=19456 KiB, t=2, p=1), storing self-describing PHC strings so parameters
 * can be raised later and old hashes upgraded on the next successful login.
 *
 * Passwords are NFKC-normalized before hashing (NIST SP 800-63B 5.1.1.2), matching
 * `checkNewPassword`, so the same typed password verifies whatever form the keyboard sent.
 *
 * `computations` counts every argon2 run (hash, verify, dummy verify) so tests can prove a
 * throttled or blocked request did no hashing work.
 *
 * @example
 * const hasher = new PasswordHasher();
 * const phc = await hasher.hash('correct horse battery staple');
 * const { ok, needsRehash } = await hasher.verify(phc, 'correct horse battery staple');
 * // Unknown user: spend the same time as a wrong password (OWASP Authentication Cheat Sheet).
 * await hasher.verifyDummy(submittedPassword);
 */
export class PasswordHasher {
  readonly #memoryCost: number;
  readonly #timeCost: number;
  readonly #parallelism: number;
  readonly #dummy: string;
  #computations = 0;

  constructor(options: PasswordHasherOptions = {}) {
    this.#parallelism = checkInteger('parallelism', options.parallelism ?? 1, 1, 255);
    // Argon2 needs at least 8 KiB per lane.
    this.#memoryCost = checkInteger(
      'memoryCost',
      options.memoryCost ?? 19_456,
      8 * this.#parallelism,
      4_194_304,
    );
    this.#timeCost = checkInteger('timeCost', options.timeCost ?? 2, 1, 100);
    // A well-formed hash with the current parameters, a fixed salt and a fixed tag that no
    // password produces (short of a 2^-256 collision). Verifying against it costs exactly what
    // verifying a real hash costs, with no hash computed up front. Rejected alternative:
    // hashing a random password at start-up, which costs a computation nobody asked for.
    this.#dummy =
      `$argon2id$v=19$m=${this.#memoryCost},t=${this.#timeCost},p=${this.#parallelism}` +
      '$rMPq4in/4CQMvN8cvIR8Yg$3CnrAOWPb1oXPGcGlztlzJvGdFNl7sGAf+Ywho2cq94';
  }

  /** Number of argon2 computations this hasher has run. */
  get computations(): number {
    return this.#computations;
  }

  /** Hashes a password into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$tag`). */
  async hash(password: string): Promise<string> {
    this.#computations++;
    return hash(password.normalize('NFKC'), {
      algorithm: ARGON2ID,
      version: V0X13,
      memoryCost: this.#memoryCost,
      timeCost: this.#timeCost,
      parallelism: this.#parallelism,
      outputLen: OUTPUT_LEN,
    });
  }

  /**
   * Checks a password against a stored PHC string. A wrong password is a returned value; a
   * stored value that is not an argon2 PHC string is data corruption and throws.
   */
  async verify(phc: string, password: string): Promise<PasswordVerification> {
    const stored = this.#parse(phc);
    this.#computations++;
    const ok = await verify(phc, password.normalize('NFKC'));
    return { ok, needsRehash: ok && this.#isWeaker(stored) };
  }

  /**
   * Does the work of `verify` against a fixed dummy hash and always answers false, so a login
   * for an unknown username takes as long as one with a wrong password (no account
   * enumeration by timing).
   */
  async verifyDummy(password: string): Promise<false> {
    this.#computations++;
    await verify(this.#dummy, password.normalize('NFKC'));
    return false;
  }

  #parse(phc: string): ParsedHashOptions {
    try {
      return parseOptions(phc);
    } catch (cause) {
      // The library's message names no input; the stored value itself is never echoed.
      throw new Error('stored password hash is not a valid argon2 PHC string', { cause });
    }
  }

  /** Weaker than current settings on any axis: algorithm, version, m, t, p, salt or tag length. */
  #isWeaker(stored: ParsedHashOptions): boolean {
    return (
      stored.algorithm !== ARGON2ID ||
      stored.version !== V0X13 ||
      stored.memoryCost < this.#memoryCost ||
      stored.timeCost < this.#timeCost ||
      stored.parallelism < this.#parallelism ||
      stored.saltLen < SALT_LEN ||
      stored.outputLen < OUTPUT_LEN
    );
  }
}
