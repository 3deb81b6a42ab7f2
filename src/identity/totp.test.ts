import fc from 'fast-check';
import { generateSync, generateURI, ScureBase32Plugin, verifySync } from 'otplib';
import { describe, expect, it } from 'vitest';
import {
  assertInertSvg,
  generateTotpSecret,
  hotp,
  TOTP_PERIOD_SECONDS,
  totpAt,
  totpQrSvg,
  totpStepAt,
  totpUri,
  verifyTotp,
} from './totp.ts';

/** "12345678901234567890" (ASCII), the RFC 4226 / RFC 6238 SHA-1 test key, in base32. */
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const at = (unixSeconds: number) => new Date(unixSeconds * 1000);
const step = (n: number) => at(n * TOTP_PERIOD_SECONDS);

describe('TOTP generation', () => {
  it('encodes the RFC test key as the base32 we use', () => {
    expect(new ScureBase32Plugin().encode(new TextEncoder().encode('12345678901234567890'))).toBe(RFC_SECRET);
  });

  it('matches the RFC 4226 Appendix D HOTP values', () => {
    const expected = [
      '755224',
      '287082',
      '359152',
      '969429',
      '338314',
      '254676',
      '287922',
      '162583',
      '399871',
      '520489',
    ];
    expect(expected.map((_, counter) => hotp({ secret: RFC_SECRET, counter }))).toEqual(expected);
  });

  it.each([
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ])('matches the RFC 6238 Appendix B SHA-1 vector at T=%i', (seconds, code) => {
    expect(totpAt(RFC_SECRET, at(seconds), { digits: 8 })).toBe(code);
    // A 6-digit code is the same truncated value mod 10^6: the last six digits.
    expect(totpAt(RFC_SECRET, at(seconds))).toBe(code.slice(-6));
  });

  it('generates 160-bit base32 secrets that differ every time', () => {
    const secrets = new Set(Array.from({ length: 200 }, generateTotpSecret));
    expect(secrets.size).toBe(200);
    for (const s of secrets) {
      expect(s).toMatch(/^[A-Z2-7]{32}$/);
      expect(new ScureBase32Plugin().decode(s)).toHaveLength(20);
    }
  });

  it("agrees with otplib's own generator for random secrets and times", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 64 }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (bytes, seconds) => {
          const secret = new ScureBase32Plugin().encode(bytes, { padding: false });
          expect(totpAt(secret, at(seconds))).toBe(generateSync({ secret, epoch: seconds }));
          expect(totpAt(secret, at(seconds), { digits: 8 })).toBe(
            generateSync({ secret, epoch: seconds, digits: 8 }),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses secrets that are not base32 or shorter than 128 bits', () => {
    expect(() => totpAt('not base32!', new Date())).toThrow(/base32/);
    expect(() => totpAt('GEZDGNBV', new Date())).toThrow(/128 bits/);
    expect(() => totpAt(RFC_SECRET, new Date(Number.NaN))).toThrow(/valid date/);
  });
});

describe('TOTP verification', () => {
  const secret = generateTotpSecret();
  const now = step(60_000_000).getTime() + 12_345; // 12 s into step 60 000 000
  const current = totpStepAt(new Date(now));

  it('accepts the current step and one step either side, and returns the matched step', () => {
    for (const delta of [-1, 0, 1]) {
      const code = totpAt(secret, step(current + delta));
      expect(verifyTotp({ secret, code, now: new Date(now), lastUsedStep: null })).toEqual({
        ok: true,
        step: current + delta,
      });
    }
  });

  it('rejects codes two steps away as a mismatch', () => {
    for (const delta of [-2, 2]) {
      const code = totpAt(secret, step(current + delta));
      const r = verifyTotp({ secret, code, now: new Date(now), lastUsedStep: null });
      expect(r).toEqual({ ok: false, reason: 'mismatch' });
    }
  });

  it('accepts only the current step with window 0', () => {
    const prev = totpAt(secret, step(current - 1));
    expect(verifyTotp({ secret, code: prev, now: new Date(now), lastUsedStep: null, window: 0 })).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    const cur = totpAt(secret, step(current));
    expect(verifyTotp({ secret, code: cur, now: new Date(now), lastUsedStep: null, window: 0 }).ok).toBe(
      true,
    );
  });

  it('rejects the same code a second time as a replay', () => {
    const code = totpAt(secret, new Date(now));
    const first = verifyTotp({ secret, code, now: new Date(now), lastUsedStep: null });
    expect(first).toEqual({ ok: true, step: current });
    const lastUsedStep = first.ok ? first.step : null;
    expect(verifyTotp({ secret, code, now: new Date(now + 5_000), lastUsedStep })).toEqual({
      ok: false,
      reason: 'replay',
    });
  });

  it('rejects an older step after a newer one was used', () => {
    const newer = totpAt(secret, step(current + 1));
    const r = verifyTotp({ secret, code: newer, now: new Date(now), lastUsedStep: null });
    expect(r).toEqual({ ok: true, step: current + 1 });
    const older = totpAt(secret, new Date(now));
    expect(verifyTotp({ secret, code: older, now: new Date(now), lastUsedStep: current + 1 })).toEqual({
      ok: false,
      reason: 'replay',
    });
  });

  it('accepts the next step after the previous one was used', () => {
    const code = totpAt(secret, step(current + 1));
    expect(verifyTotp({ secret, code, now: step(current + 1), lastUsedStep: current })).toEqual({
      ok: true,
      step: current + 1,
    });
  });

  it.each([
    ['empty', ''],
    ['five digits', '12345'],
    ['seven digits', '1234567'],
    ['a letter', '12345a'],
    ['Arabic-Indic digits', '١٢٣٤٥٦'],
    ['full-width digits', '１２３４５６'],
    ['a dash', '123-456'],
    ['a newline', '123456\n'],
    ['a sign', '+12345'],
    ['a huge input', '1'.repeat(10_000)],
  ])('rejects %s as a format error', (_label, code) => {
    expect(verifyTotp({ secret, code, now: new Date(now), lastUsedStep: null })).toEqual({
      ok: false,
      reason: 'format',
    });
  });

  it('accepts surrounding and grouping spaces', () => {
    const code = totpAt(secret, new Date(now));
    for (const spaced of [` ${code} `, `${code.slice(0, 3)} ${code.slice(3)}`]) {
      expect(verifyTotp({ secret, code: spaced, now: new Date(now), lastUsedStep: null }).ok).toBe(true);
    }
  });

  it("agrees with otplib's verifier, including its replay guard", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 2 ** 36 }),
        fc.integer({ min: -3, max: 3 }),
        // otplib throws when afterTimeStep lies beyond the window; we simply reject every code.
        fc.option(fc.integer({ min: -3, max: 1 }), { nil: null }),
        (nowSeconds, delta, lastDelta) => {
          const nowStep = Math.floor(nowSeconds / TOTP_PERIOD_SECONDS);
          const code = totpAt(secret, step(nowStep + delta));
          const lastUsedStep = lastDelta === null ? null : nowStep + lastDelta;
          const ours = verifyTotp({ secret, code, now: at(nowSeconds), lastUsedStep });
          const theirs = verifySync({
            secret,
            token: code,
            epoch: nowSeconds,
            epochTolerance: TOTP_PERIOD_SECONDS,
            ...(lastUsedStep === null ? {} : { afterTimeStep: lastUsedStep }),
          });
          // otplib's epochTolerance is in seconds from `now`, not whole steps; compare only where
          // both define the window the same way (|delta| <= 1 inside, >= 2 outside).
          if (Math.abs(delta) <= 1 && (lastUsedStep === null || nowStep + delta > lastUsedStep)) {
            expect(ours).toEqual({ ok: true, step: nowStep + delta });
          }
          if (Math.abs(delta) >= 2) {
            expect(ours.ok).toBe(false);
          }
          expect(ours.ok).toBe(theirs.valid);
          if (ours.ok && theirs.valid && 'timeStep' in theirs) {
            expect(ours.step).toBe(theirs.timeStep);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('enrolment', () => {
  const secret = generateTotpSecret();

  it('builds the otpauth URI authenticator apps expect', () => {
    const uri = totpUri({ secret, account: 'dr.mensah@clinic.example', issuer: 'Custos Health' });
    expect(uri).toBe(
      `otpauth://totp/Custos%20Health:dr.mensah%40clinic.example?secret=${secret}` +
        '&issuer=Custos%20Health&algorithm=SHA1&digits=6&period=30',
    );
    const parsed = new URL(uri);
    expect(parsed.protocol).toBe('otpauth:');
    expect(parsed.searchParams.get('secret')).toBe(secret);
    expect(parsed.searchParams.get('issuer')).toBe('Custos Health');
  });

  it("has the same label and secret as otplib's generateURI", () => {
    const ours = new URL(totpUri({ secret, account: 'a b&c?d#e/f', issuer: 'Custos' }));
    const theirs = new URL(generateURI({ secret, label: 'a b&c?d#e/f', issuer: 'Custos' }));
    expect(decodeURIComponent(ours.pathname)).toBe(decodeURIComponent(theirs.pathname));
    expect(ours.searchParams.get('secret')).toBe(theirs.searchParams.get('secret'));
  });

  it('escapes the label so that it cannot inject parameters', () => {
    const uri = totpUri({ secret, account: 'x?secret=AAAA&issuer=Evil#', issuer: 'Custos' });
    const parsed = new URL(uri);
    expect(parsed.searchParams.getAll('secret')).toEqual([secret]);
    expect(parsed.searchParams.getAll('issuer')).toEqual(['Custos']);
    expect(parsed.hash).toBe('');
  });

  it('refuses colons and empty names in the label', () => {
    expect(() => totpUri({ secret, account: 'a:b', issuer: 'Custos' })).toThrow(/colon/);
    expect(() => totpUri({ secret, account: 'a', issuer: 'Cus:tos' })).toThrow(/colon/);
    expect(() => totpUri({ secret, account: ' ', issuer: 'Custos' })).toThrow(/empty/);
  });

  it('renders the URI as an inert SVG', async () => {
    const uri = totpUri({ secret, account: '<script>alert(1)</script>', issuer: 'Custos' });
    const svg = await totpQrSvg(uri);
    expect(svg).toContain('<svg');
    expect(svg.toLowerCase()).not.toContain('<script');
    expect(svg).not.toContain(secret); // the secret is in the modules, not in the markup
    expect(svg).not.toMatch(/\son[a-z]+=/i);
  });

  it('rejects SVG with anything beyond svg and path geometry', () => {
    const ok = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><path d="M0 0h1"/></svg>';
    expect(() => assertInertSvg(ok)).not.toThrow();
    for (const bad of [
      '<svg><script>alert(1)</script></svg>',
      '<svg onload="alert(1)"><path d="M0 0"/></svg>',
      "<svg onload='alert(1)'></svg>",
      '<svg><path d="M0 0" onclick=alert(1) /></svg>',
      '<svg><a href="javascript:alert(1)"><path d="M0"/></a></svg>',
      '<svg><title>otpauth://totp/x?secret=AAAA</title></svg>',
      '<div><svg></svg></div>',
    ]) {
      expect(() => assertInertSvg(bad), bad).toThrow(/rejected/);
    }
  });
});
