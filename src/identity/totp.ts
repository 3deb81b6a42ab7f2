import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import QRCode from 'qrcode';
import { CustosError, validationError } from '../errors.ts';

/**
 * Time-based one-time passwords, the second factor for staff sign-in.
 *
 * - HOTP: RFC 4226 (HMAC-SHA-1, dynamic truncation) — https://www.rfc-editor.org/rfc/rfc4226
 * - TOTP: RFC 6238 with T0 = 0, a 30-second step and 6 digits — https://www.rfc-editor.org/rfc/rfc6238
 * - Key URI: the `otpauth://` format authenticator apps scan —
 *   https://github.com/google/google-authenticator/wiki/Key-Uri-Format
 *
 * SHA-1 stays because authenticator apps ignore or mishandle `algorithm=SHA256`; HMAC-SHA-1 is
 * not affected by SHA-1 collision attacks (RFC 6238 §5.1, RFC 4226 Appendix A).
 *
 * Generation is a few lines over node:crypto's HMAC rather than otplib's functional API: it is
 * synchronous, has no plugin wiring, and lets verification compute every candidate in the window
 * and compare them all in constant time. The tests check it against the RFC vectors and against
 * otplib's own generator.
 */

/** RFC 6238 time step X, in seconds. */
export const TOTP_PERIOD_SECONDS = 30;
/** Code length shown by authenticator apps. */
export const TOTP_DIGITS = 6;
/** RFC 4226 §4 R6 recommends 160 bits; we generate exactly that. */
const SECRET_BYTES = 20;
/** RFC 4226 §4 R6: the shared secret must be at least 128 bits. */
const MIN_SECRET_BYTES = 16;

export type OtpDigits = 6 | 8;

export type TotpVerification =
  | { readonly ok: true; readonly step: number }
  | { readonly ok: false; readonly reason: 'format' | 'mismatch' | 'replay' };

/**
 * A new TOTP shared secret: 160 random bits, RFC 4648 base32 without padding (what authenticator
 * apps expect in the `secret` parameter). Store it encrypted; it is a credential.
 *
 * @example
 * const secret = generateTotpSecret(); // 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' (32 characters)
 */
export function generateTotpSecret(): string {
  return base32Encode(randomBytes(SECRET_BYTES));
}

/**
 * The `otpauth://totp/` key URI for enrolment. The label is `issuer:account`, each part
 * percent-encoded, and the issuer is repeated as a parameter (the Key URI format recommends both;
 * older apps read only the prefix, newer ones prefer the parameter). Algorithm, digits and period
 * are spelled out even though they are the defaults, so no app has to guess.
 *
 * Neither issuer nor account may contain a colon: the Key URI format forbids it, and some apps
 * split the decoded label on the first colon.
 *
 * @example
 * totpUri({ secret, account: 'dr.mensah@clinic.example', issuer: 'Custos' });
 * // 'otpauth://totp/Custos:dr.mensah%40clinic.example?secret=…&issuer=Custos&algorithm=SHA1&digits=6&period=30'
 */
export function totpUri(options: { secret: string; account: string; issuer: string }): string {
  const { secret, account, issuer } = options;
  decodeSecret(secret); // throws on a malformed secret, before it reaches a QR code
  for (const [field, value] of [
    ['issuer', issuer],
    ['account', account],
  ] as const) {
    if (value.trim() === '') {
      throw validationError(field, 'must not be empty');
    }
    if (value.includes(':')) {
      throw validationError(field, 'must not contain a colon (Key URI format)');
    }
  }
  // encodeURIComponent, not URLSearchParams: the latter writes spaces as '+', which several
  // authenticator apps show literally.
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(account)}`;
  const params = [
    `secret=${normalizeSecretText(secret)}`,
    `issuer=${encodeURIComponent(issuer)}`,
    'algorithm=SHA1',
    `digits=${TOTP_DIGITS}`,
    `period=${TOTP_PERIOD_SECONDS}`,
  ].join('&');
  return `otpauth://totp/${label}?${params}`;
}

/**
 * The key URI as a QR code, an SVG document safe to inline in a page: qrcode's SVG renderer emits
 * only `<svg>` and `<path>` with geometry (the URI is encoded in the modules, never embedded as
 * text), and the output is checked against that allowlist before it is returned.
 *
 * The QR code carries the TOTP secret: serve it with `Cache-Control: no-store` and only to the
 * user enrolling.
 *
 * @example
 * const svg = await totpQrSvg(totpUri({ secret, account, issuer: 'Custos' }));
 */
export async function totpQrSvg(uri: string): Promise<string> {
  const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
  assertInertSvg(svg);
  return svg;
}

/**
 * Verifies a 6-digit code against the secret at `now`.
 *
 * - Format: exactly six ASCII digits after removing spaces ("123 456" as some apps display it is
 *   accepted); anything else is `format` without any HMAC work.
 * - Window: the current step and `window` steps either side (default 1, i.e. ±30 s of clock
 *   drift, RFC 6238 §5.2). All candidates are computed and compared with `timingSafeEqual`, with
 *   no early exit, so timing does not reveal which step (if any) matched.
 * - Replay (RFC 6238 §5.2, "MUST NOT accept the second attempt of the same OTP"): a code whose
 *   matched step is `<= lastUsedStep` is `replay`. The caller stores the returned `step` as the
 *   new `lastUsedStep` in the same transaction that accepts the sign-in.
 *
 * If one code happens to match two steps in the window (p ≈ 10⁻⁶), the latest unused step is
 * taken, so the same six digits cannot be accepted a second time.
 *
 * A malformed secret or an invalid date throws: those are programming or data errors, not user
 * input.
 *
 * @example
 * const r = verifyTotp({ secret, code: body.code, now: new Date(), lastUsedStep: user.totpLastStep });
 * if (r.ok) await users.setTotpLastStep(user.id, r.step);
 */
export function verifyTotp(options: {
  secret: string;
  code: string;
  now: Date;
  lastUsedStep: number | null;
  window?: 0 | 1;
}): TotpVerification {
  const { secret, code, now, lastUsedStep, window = 1 } = options;
  const key = decodeSecret(secret);
  const current = stepAt(now);
  if (lastUsedStep !== null && !Number.isSafeInteger(lastUsedStep)) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'lastUsedStep must be an integer or null');
  }
  // Bound the length before touching the string further; an attacker controls it.
  if (code.length > 32) {
    return { ok: false, reason: 'format' };
  }
  const digits = code.replaceAll(' ', '');
  if (!/^[0-9]{6}$/.test(digits)) {
    return { ok: false, reason: 'format' };
  }
  const given = Buffer.from(digits, 'ascii');

  let fresh: number | null = null;
  let replayed = false;
  for (let step = current - window; step <= current + window; step++) {
    if (step < 0) {
      continue;
    }
    const expected = Buffer.from(hotpFromKey(key, step, TOTP_DIGITS), 'ascii');
    // Both are 6 bytes; timingSafeEqual never short-circuits. Branch on the result only after
    // the comparison, and keep looping either way.
    const match = timingSafeEqual(expected, given);
    if (match && lastUsedStep !== null && step <= lastUsedStep) {
      replayed = true;
    } else if (match) {
      fresh = step; // ascending loop: the last fresh match is the latest
    }
  }
  if (fresh !== null) {
    return { ok: true, step: fresh };
  }
  return { ok: false, reason: replayed ? 'replay' : 'mismatch' };
}

/**
 * The TOTP code for `secret` at `date` (6 digits unless told otherwise). For tests and the
 * benchmark's software authenticator; sign-in uses {@link verifyTotp}.
 *
 * @example
 * const code = totpAt(secret, new Date()); // '492039'
 */
export function totpAt(secret: string, date: Date, options: { digits?: OtpDigits } = {}): string {
  return hotpFromKey(decodeSecret(secret), stepAt(date), options.digits ?? TOTP_DIGITS);
}

/**
 * RFC 4226 HOTP value for a base32 secret and a counter.
 *
 * @example
 * hotp({ secret: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', counter: 0 }); // '755224' (RFC 4226 Appendix D)
 */
export function hotp(options: { secret: string; counter: number; digits?: OtpDigits }): string {
  if (!Number.isSafeInteger(options.counter) || options.counter < 0) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'HOTP counter must be a non-negative integer');
  }
  return hotpFromKey(decodeSecret(options.secret), options.counter, options.digits ?? TOTP_DIGITS);
}

/** The RFC 6238 time step T = floor((unix time − T0) / X) with T0 = 0. */
export function totpStepAt(date: Date): number {
  return stepAt(date);
}

function stepAt(date: Date): number {
  const ms = date.getTime();
  if (!Number.isFinite(ms) || ms < 0) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'TOTP time must be a valid date after 1970');
  }
  return Math.floor(ms / 1000 / TOTP_PERIOD_SECONDS);
}

/** RFC 4226 §5.3: HMAC-SHA-1 over the 8-byte big-endian counter, dynamic truncation, mod 10^d. */
function hotpFromKey(key: Buffer, counter: number, digits: OtpDigits): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

// --- base32 (RFC 4648 §6), unpadded on output -------------------------------------------------

const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = ((buffer << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) {
    out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  }
  return out;
}

/** Upper-case, without spaces or '=' padding: how a secret appears in the URI. */
function normalizeSecretText(secret: string): string {
  return secret.replaceAll(' ', '').replace(/=+$/, '').toUpperCase();
}

function decodeSecret(secret: string): Buffer {
  const text = normalizeSecretText(secret);
  if (!/^[A-Z2-7]+$/.test(text)) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'TOTP secret is not base32');
  }
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of text) {
    buffer = ((buffer << 5) | BASE32_ALPHABET.indexOf(ch)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new CustosError('CUSTOS_ERR_VALIDATION', 'TOTP secret is shorter than 128 bits (RFC 4226 §4)');
  }
  return Buffer.from(bytes);
}

// --- SVG allowlist ---------------------------------------------------------------------------

const SVG_TAGS = new Set(['svg', 'path']);
const SVG_ATTRIBUTES = new Set([
  'xmlns',
  'viewBox',
  'width',
  'height',
  'shape-rendering',
  'fill',
  'stroke',
  'd',
]);

/**
 * Defence in depth: qrcode's output contains no scripts today; this makes sure an upgrade that
 * adds, say, a `<title>` with the URI or an event handler fails loudly instead of being inlined.
 */
export function assertInertSvg(svg: string): void {
  const fail = (why: string): never => {
    throw new CustosError('CUSTOS_ERR_INTEGRITY', `QR code SVG rejected: ${why}`);
  };
  if (!svg.trimStart().startsWith('<svg')) {
    fail('does not start with <svg');
  }
  for (const tag of svg.matchAll(/<\/?([^\s/>]*)([^>]*)>/g)) {
    const name = tag[1] ?? '';
    if (!SVG_TAGS.has(name)) {
      fail(`unexpected element <${name}>`);
    }
    const attrs = tag[2] ?? '';
    // Only double-quoted name="value" pairs: no unquoted or single-quoted forms to slip past.
    if (!/^(\s+[A-Za-z-]+="[^"<>&]*")*\s*\/?$/.test(attrs)) {
      fail(`malformed attributes on <${name}>`);
    }
    for (const attr of attrs.matchAll(/([A-Za-z-]+)="/g)) {
      const attrName = attr[1] ?? '';
      if (!SVG_ATTRIBUTES.has(attrName)) {
        fail(`unexpected attribute ${attrName}`);
      }
    }
  }
  // Text outside tags would be content we did not expect (and could be markup in disguise).
  if (svg.replace(/<[^>]*>/g, '').trim() !== '') {
    fail('unexpected text content');
  }
}
