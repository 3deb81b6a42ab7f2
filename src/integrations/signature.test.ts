import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhookSignature } from './signature.ts';

const SECRET = 'whsec_synthetic-test-secret';
const BODY = JSON.stringify({
  id: 'd1',
  event: 'appointment.booked',
  data: { start: '2026-11-23T09:00:00.000Z' },
});
const NOW = new Date(Date.UTC(2026, 10, 23, 9, 0, 0));

describe('webhook signatures', () => {
  it('signs t.body with HMAC-SHA256 in the Stripe-style header, and verifies it', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const t = Math.floor(NOW.getTime() / 1000);
    const hex = createHmac('sha256', SECRET).update(`${t}.${BODY}`).digest('hex');
    expect(header).toBe(`t=${t},v1=${hex}`);
    expect(verifyWebhookSignature(SECRET, header, BODY, NOW)).toEqual({
      ok: true,
      timestamp: new Date(t * 1000),
    });
    expect(verifyWebhookSignature(SECRET, header, Buffer.from(BODY), NOW).ok).toBe(true);
  });

  it('accepts a timestamp within the tolerance (300 s by default) and refuses one outside it', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    expect(verifyWebhookSignature(SECRET, header, BODY, at(300)).ok).toBe(true);
    expect(verifyWebhookSignature(SECRET, header, BODY, at(-300)).ok).toBe(true);
    expect(verifyWebhookSignature(SECRET, header, BODY, at(301))).toEqual({ ok: false, reason: 'timestamp' });
    expect(verifyWebhookSignature(SECRET, header, BODY, at(-301))).toEqual({
      ok: false,
      reason: 'timestamp',
    });
    expect(verifyWebhookSignature(SECRET, header, BODY, at(50), 30)).toEqual({
      ok: false,
      reason: 'timestamp',
    });
  });

  it('refuses a tampered body, a changed timestamp, a wrong secret and a tampered signature', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    expect(verifyWebhookSignature(SECRET, header, BODY.replace('booked', 'cancelled'), NOW).ok).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, `${BODY} `, NOW).ok).toBe(false);
    const t = Math.floor(NOW.getTime() / 1000);
    const moved = header.replace(`t=${t}`, `t=${t + 1}`);
    expect(verifyWebhookSignature(SECRET, moved, BODY, NOW)).toEqual({ ok: false, reason: 'signature' });
    expect(verifyWebhookSignature(`${SECRET}x`, header, BODY, NOW)).toEqual({
      ok: false,
      reason: 'signature',
    });
    const hex = header.split('v1=')[1] as string;
    const flipped = `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;
    expect(verifyWebhookSignature(SECRET, header.replace(hex, flipped), BODY, NOW)).toEqual({
      ok: false,
      reason: 'signature',
    });
  });

  it('accepts any one matching v1 among several (secret replacement) and ignores unknown schemes', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const other = signWebhook('whsec_old', BODY, NOW).split(',')[1];
    expect(verifyWebhookSignature(SECRET, `${header},${other},v0=abc`, BODY, NOW).ok).toBe(true);
    expect(verifyWebhookSignature('whsec_old', `${header},${other}`, BODY, NOW).ok).toBe(true);
  });

  it('calls malformed headers malformed', () => {
    for (const h of [
      undefined,
      '',
      'garbage',
      't=abc,v1=00',
      `v1=${'0'.repeat(64)}`,
      `t=${Math.floor(NOW.getTime() / 1000)}`,
      `t=1,t=2,v1=${'0'.repeat(64)}`,
      `t=${Math.floor(NOW.getTime() / 1000)},v1=XYZ`,
      'x'.repeat(5000),
    ]) {
      expect(verifyWebhookSignature(SECRET, h, BODY, NOW), String(h).slice(0, 20)).toEqual({
        ok: false,
        reason: 'malformed',
      });
    }
  });

  it('verifies what it signs and nothing else, for any body and secret (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string(), (body, secret, other) => {
        const header = signWebhook(secret, body, NOW);
        expect(verifyWebhookSignature(secret, header, body, NOW).ok).toBe(true);
        if (other !== body) {
          expect(verifyWebhookSignature(secret, header, other, NOW).ok).toBe(false);
        }
      }),
    );
  });
});
