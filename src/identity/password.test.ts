import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkNewPassword, PasswordHasher } from './password.ts';
import { commonPasswords } from './password-list.ts';

const ctx = { username: 'anna.berg' };
const MESSAGES = [
  'must be at least 12 characters',
  'must be at most 128 characters',
  'must not contain the username',
  'is in a list of commonly used or breached passwords',
];
const LIST_HIT = 'is in a list of commonly used or breached passwords';

/** A string of `n` code points that is on no list and contains no username. */
const unusual = (n: number): string => 'Zq8#vLp2!mWx7$Tk'.repeat(10).slice(0, n);

describe('checkNewPassword: length (NIST SP 800-63B 3.1.1.2)', () => {
  it('rejects 11 characters and accepts 12', () => {
    expect(checkNewPassword(unusual(11), ctx)).toEqual({
      ok: false,
      problem: 'must be at least 12 characters',
    });
    expect(checkNewPassword(unusual(12), ctx)).toEqual({ ok: true });
  });

  it('accepts 128 characters and rejects 129', () => {
    expect(checkNewPassword(unusual(128), ctx)).toEqual({ ok: true });
    expect(checkNewPassword(unusual(129), ctx)).toEqual({
      ok: false,
      problem: 'must be at most 128 characters',
    });
  });

  it('counts an emoji (two UTF-16 units) as one character', () => {
    expect(checkNewPassword('🔒'.repeat(11), ctx).ok).toBe(false);
    expect(checkNewPassword('🔒'.repeat(12), ctx)).toEqual({ ok: true });
    expect(checkNewPassword('🦷'.repeat(128), ctx)).toEqual({ ok: true });
    expect(checkNewPassword('🦷'.repeat(129), ctx).ok).toBe(false);
  });

  it('counts multi-byte letters and spaces like any other character', () => {
    expect(checkNewPassword('пароль мой ж', ctx)).toEqual({ ok: true }); // 12, Cyrillic and spaces
    expect(checkNewPassword('密码是我的秘密钥匙不能', ctx).ok).toBe(false); // 11 CJK
    expect(checkNewPassword('密码是我的秘密钥匙不能说', ctx)).toEqual({ ok: true }); // 12 CJK
  });

  it('counts after NFKC, so e + combining acute is one character', () => {
    const decomposed = 'e\u0301'; // NFKC composes it to é
    expect(checkNewPassword(`${decomposed.repeat(11)}`, ctx)).toEqual({
      ok: false,
      problem: 'must be at least 12 characters',
    });
    expect(checkNewPassword(decomposed.repeat(12), ctx)).toEqual({ ok: true });
    expect(checkNewPassword(decomposed.repeat(129), ctx).ok).toBe(false);
  });

  it('counts a combining mark with no precomposed form as its own character', () => {
    // q + combining acute has no composed form: 6 × 2 = 12 code points.
    expect(checkNewPassword('q\u0301'.repeat(6), ctx)).toEqual({ ok: true });
    expect(checkNewPassword(`${'q\u0301'.repeat(5)}q`, ctx).ok).toBe(false);
  });

  it('counts a ligature as the letters NFKC expands it to', () => {
    const raw = `\uFB01${unusual(10)}`; // ﬁ + 10 = 11 code points typed, 12 after NFKC
    expect([...raw].length).toBe(11);
    expect(checkNewPassword(raw, ctx)).toEqual({ ok: true });
  });

  it('gives the same answer for any two forms of the same text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        expect(checkNewPassword(s.normalize('NFKD'), ctx)).toEqual(checkNewPassword(s.normalize('NFC'), ctx));
      }),
    );
  });
});

describe('checkNewPassword: common and breached passwords', () => {
  it('bundles at least 100,000 distinct lowercase entries', () => {
    const list = commonPasswords();
    expect(list.size).toBeGreaterThanOrEqual(100_000);
    for (const entry of ['password1234', 'iloveyou1234', 'qwertyuiop123', 'administrator']) {
      expect(list.has(entry)).toBe(true);
    }
  });

  it.each(['password1234', 'PassWord1234', 'ILOVEYOU1234', 'QwertyUiop123', 'Administrator'])(
    'rejects %s in any case',
    (pw) => {
      expect(checkNewPassword(pw, ctx)).toEqual({ ok: false, problem: LIST_HIT });
    },
  );

  it('rejects a list entry typed in fullwidth characters (NFKC)', () => {
    expect(checkNewPassword('ｐａｓｓｗｏｒｄ１２３４', ctx)).toEqual({ ok: false, problem: LIST_HIT });
  });

  it('accepts a long passphrase that is on no list', () => {
    expect(checkNewPassword('correct horse battery staple', ctx)).toEqual({ ok: true });
  });
});

describe('checkNewPassword: username', () => {
  it('rejects a password containing the username in any case', () => {
    expect(checkNewPassword('my-ANNA.BERG-passphrase', ctx)).toEqual({
      ok: false,
      problem: 'must not contain the username',
    });
  });

  it('compares after NFKC on both sides', () => {
    expect(checkNewPassword('ｍｙ ａｎｎａ.ｂｅｒｇ ｐａｓｓ', ctx).ok).toBe(false);
    expect(checkNewPassword('secret anna.berg phrase', { username: 'Ａｎｎａ.Ｂｅｒｇ' }).ok).toBe(false);
  });

  it('accepts a password that only shares part of the username', () => {
    expect(checkNewPassword('anna went to bergen', ctx)).toEqual({ ok: true });
  });

  it('imposes nothing for an empty username', () => {
    expect(checkNewPassword(unusual(12), { username: '  ' })).toEqual({ ok: true });
  });
});

describe('checkNewPassword: messages', () => {
  it('never echoes the password', () => {
    for (const pw of ['short', unusual(200), 'PassWord1234', 'xx anna.berg xx', '🔒🔒🔒']) {
      const result = checkNewPassword(pw, ctx);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.problem).not.toContain(pw);
        expect(result.problem.toLowerCase()).not.toContain(pw.toLowerCase());
      }
    }
  });

  it('answers only with one of four fixed sentences', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 140 }),
        fc.string({ maxLength: 8 }),
        (pw, username) => {
          const result = checkNewPassword(pw, { username });
          expect(result.ok || MESSAGES.includes(result.problem)).toBe(true);
        },
      ),
    );
  });
});

describe('PasswordHasher (argon2id, OWASP Password Storage Cheat Sheet)', () => {
  const hasher = new PasswordHasher();
  const weak = new PasswordHasher({ memoryCost: 8192, timeCost: 1 });
  const pw = 'correct horse battery staple';

  it('hashes to an argon2id PHC string at m=19456, t=2, p=1 with a fresh salt', async () => {
    const a = await hasher.hash(pw);
    const b = await hasher.hash(pw);
    expect(a).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain(pw);
  });

  it('verifies the right password and rejects a wrong one', async () => {
    const phc = await hasher.hash(pw);
    expect(await hasher.verify(phc, pw)).toEqual({ ok: true, needsRehash: false });
    expect(await hasher.verify(phc, `${pw}!`)).toEqual({ ok: false, needsRehash: false });
    expect(await hasher.verify(phc, 'Correct horse battery staple')).toEqual({
      ok: false,
      needsRehash: false,
    });
  });

  it('verifies the password in another Unicode form (NFKC before hashing)', async () => {
    const phc = await hasher.hash('ｐａｓｓ ｗｏｒｄ ｃａｆｅ\u0301');
    expect((await hasher.verify(phc, 'pass word café')).ok).toBe(true);
  });

  it('asks for a rehash when the stored parameters are weaker', async () => {
    const phc = await weak.hash(pw);
    expect(phc).toContain('$m=8192,t=1,p=1$');
    expect(await hasher.verify(phc, pw)).toEqual({ ok: true, needsRehash: true });
    expect(await hasher.verify(phc, 'wrong password!')).toEqual({ ok: false, needsRehash: false });
    expect(await weak.verify(phc, pw)).toEqual({ ok: true, needsRehash: false });
  });

  it('does not ask to rehash a hash made with stronger parameters', async () => {
    const phc = await hasher.hash(pw);
    expect(await weak.verify(phc, pw)).toEqual({ ok: true, needsRehash: false });
  });

  it('counts every argon2 computation', async () => {
    const h = new PasswordHasher({ memoryCost: 1024, timeCost: 1 });
    expect(h.computations).toBe(0);
    const phc = await h.hash(pw);
    await h.verify(phc, pw);
    expect(h.computations).toBe(2);
    expect(await h.verifyDummy(pw)).toBe(false);
    expect(h.computations).toBe(3);
    expect(() => {
      (h as unknown as { computations: number }).computations = 0;
    }).toThrow(TypeError);
  });

  it('rejects every password in the dummy verification', async () => {
    const h = new PasswordHasher({ memoryCost: 1024, timeCost: 1 });
    for (const p of ['', pw, 'password', '🔒'.repeat(20)]) {
      expect(await h.verifyDummy(p)).toBe(false);
    }
    expect(h.computations).toBe(4);
  });

  it('throws on a stored value that is not a PHC string, without echoing it or hashing', async () => {
    const h = new PasswordHasher();
    const stored = 'plaintext-secret-stored-by-mistake';
    const error = await h.verify(stored, pw).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('stored password hash is not a valid argon2 PHC string');
    expect((error as Error).message).not.toContain(stored);
    expect(h.computations).toBe(0);
  });

  it('names the option and not the value when options are out of range', () => {
    expect(() => new PasswordHasher({ memoryCost: 4 })).toThrow(/^memoryCost must be an integer/);
    expect(() => new PasswordHasher({ timeCost: 0 })).toThrow(/^timeCost must be an integer/);
    expect(() => new PasswordHasher({ parallelism: 1.5 })).toThrow(/^parallelism must be an integer/);
  });

  it('takes as long for an unknown user as for a wrong password (median of 9, within 30%)', async () => {
    const phc = await hasher.hash(pw);
    await hasher.verify(phc, 'warm-up');
    await hasher.verifyDummy('warm-up');
    const real: number[] = [];
    const dummy: number[] = [];
    // Interleaved so drift in machine load falls on both series alike.
    for (let i = 0; i < 9; i++) {
      let t = performance.now();
      await hasher.verify(phc, `wrong password ${i}`);
      real.push(performance.now() - t);
      t = performance.now();
      await hasher.verifyDummy(`wrong password ${i}`);
      dummy.push(performance.now() - t);
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[4]!;
    const ratio = median(dummy) / median(real);
    expect(ratio).toBeGreaterThan(0.7);
    expect(ratio).toBeLessThan(1.3);
  });
});
