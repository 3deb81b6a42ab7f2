import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures, in the style Stripe made common:
 *
 *   Custos-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
 *
 * The timestamp is signed with the body, so a captured request cannot be replayed outside the
 * tolerance window; the receiver compares in constant time. Several `v1=` values may appear
 * (while a secret is being replaced); one matching is enough. The key is the secret string as
 * shown at creation (`whsec_…`), UTF-8 encoded.
 */

export const SIGNATURE_HEADER = 'Custos-Signature';
export const DELIVERY_HEADER = 'Custos-Delivery-Id';
export const EVENT_HEADER = 'Custos-Event';

/** Default tolerance between the signed timestamp and the receiver's clock, in seconds. */
export const DEFAULT_TOLERANCE_S = 300;

const hmac = (secret: string, t: number, body: string | Buffer): Buffer =>
  createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${t}.`, 'utf8')
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest();

/** The `Custos-Signature` header value for `body` sent at `now`. */
export function signWebhook(secret: string, body: string | Buffer, now: Date): string {
  const t = Math.floor(now.getTime() / 1000);
  return `t=${t},v1=${hmac(secret, t, body).toString('hex')}`;
}

export type VerifyResult =
  | { readonly ok: true; readonly timestamp: Date }
  | { readonly ok: false; readonly reason: 'malformed' | 'timestamp' | 'signature' };

/**
 * Checks a `Custos-Signature` header against the raw request body (the exact bytes received,
 * before any JSON parsing) and the receiver's clock.
 *
 * @example
 *   // In a receiver (Express, Fastify, …) with the raw body:
 *   const v = verifyWebhookSignature(process.env.CUSTOS_WEBHOOK_SECRET, req.headers['custos-signature'], rawBody);
 *   if (!v.ok) return res.status(400).end();
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | readonly string[] | undefined,
  body: string | Buffer,
  now: Date = new Date(),
  toleranceSeconds: number = DEFAULT_TOLERANCE_S,
): VerifyResult {
  const value = Array.isArray(header) ? header.join(',') : (header as string | undefined);
  if (typeof value !== 'string' || value.length > 4096) {
    return { ok: false, reason: 'malformed' };
  }
  let t: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      return { ok: false, reason: 'malformed' };
    }
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 't') {
      if (t !== undefined || !/^\d{1,12}$/.test(v)) {
        return { ok: false, reason: 'malformed' };
      }
      t = Number(v);
    } else if (k === 'v1') {
      if (!/^[0-9a-f]{64}$/.test(v)) {
        return { ok: false, reason: 'malformed' };
      }
      signatures.push(Buffer.from(v, 'hex'));
    }
    // Other schemes (a future v2) are ignored, as receivers of such headers usually do.
  }
  if (t === undefined || signatures.length === 0) {
    return { ok: false, reason: 'malformed' };
  }
  if (Math.abs(Math.floor(now.getTime() / 1000) - t) > toleranceSeconds) {
    return { ok: false, reason: 'timestamp' };
  }
  const expected = hmac(secret, t, body);
  // Every candidate is compared, in constant time each, so timing says nothing of which matched.
  let match = false;
  for (const s of signatures) {
    match = timingSafeEqual(s, expected) || match;
  }
  return match ? { ok: true, timestamp: new Date(t * 1000) } : { ok: false, reason: 'signature' };
}
