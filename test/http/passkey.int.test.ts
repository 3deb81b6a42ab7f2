import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { passkeyHandle } from '../../src/identity/passkeys.ts';
import { totpAt } from '../../src/identity/totp.ts';
import { type AssertionJSON, SoftAuthenticator } from '../support/authenticator.ts';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] passkey.int.test.ts skipped: ${skip}`);
}

const MINUTE = 60_000;
const LOGIN_FAILED = { status: 401, body: { error: { code: 'CUSTOS_ERR_LOGIN_FAILED' } } };

describe.skipIf(skip)('passkeys as a second factor', () => {
  let server: TestServer;
  let anna: Staff;
  let bob: Staff;
  // The test server keeps the default relying party: rpId `localhost`, origin https://localhost:8443.
  const key = new SoftAuthenticator();

  beforeAll(async () => {
    server = await startServer();
    anna = await enrollStaff(server, new Client(server), 'anna', ['clinician']);
    bob = await enrollStaff(server, new Client(server), 'bob', ['nurse']);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  const audit = async (action: string) =>
    (
      await server.custos.database.db
        .selectFrom('audit_entries')
        .selectAll()
        .where('action', '=', action)
        .orderBy('seq', 'desc')
        .execute()
    ).map((e) => ({ ...e, detail: typeof e.detail === 'string' ? JSON.parse(e.detail) : e.detail }));

  const stored = async (id: string) =>
    server.custos.database.db
      .selectFrom('webauthn_credentials')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();

  /** Step 1 only: a client holding the mfa-pending cookie. */
  const passwordStep = async (from = '127.0.0.1') => {
    const c = new Client(server, from);
    const r = await c.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD });
    expect(r.status).toBe(200);
    // Keeps the per-address login throttle (30 a minute) out of the way of a long suite.
    server.clock.advance(5_000);
    return c;
  };

  const challengeOf = (r: { body: unknown }) => (r.body as { challenge: string }).challenge;

  it('adds a passkey on a full session after a TOTP login, and audits it', async () => {
    const c = new Client(server);
    await logIn(server, c, anna);
    const options = await c.post('/api/v1/auth/passkeys/options');
    expect(options).toMatchObject({
      status: 200,
      body: {
        rp: { id: 'localhost', name: 'Custos' },
        user: { name: 'anna' },
        attestation: 'none',
        authenticatorSelection: { userVerification: 'required' },
      },
    });
    const added = await c.post('/api/v1/auth/passkeys', key.register({ challenge: challengeOf(options) }));
    expect(added).toMatchObject({ status: 201, body: { passkey: { id: passkeyHandle(key.id) } } });
    expect((await c.get('/api/v1/auth/passkeys')).body).toMatchObject({
      passkeys: [{ id: passkeyHandle(key.id), transports: ['internal'] }],
    });
    const row = await stored(key.id);
    expect(row).toMatchObject({ user_id: anna.id, counter: '1', transports: ['internal'] });
    // The COSE public key is stored, never anything private.
    expect(row?.public_key.length).toBeGreaterThan(64);
    expect((await audit('passkey-added'))[0]).toMatchObject({
      actor_id: anna.id,
      outcome: 'success',
      resource_id: anna.id,
      detail: { passkey: passkeyHandle(key.id) },
    });
  });

  it('refuses a registration answer from another origin, and a challenge answered twice', async () => {
    const other = new SoftAuthenticator();
    const c = new Client(server);
    await logIn(server, c, anna);
    const o1 = await c.post('/api/v1/auth/passkeys/options');
    const evil = await c.post(
      '/api/v1/auth/passkeys',
      other.register({ challenge: challengeOf(o1) }, { origin: 'https://evil.example' }),
    );
    expect(evil).toMatchObject({ status: 400, body: { error: { code: 'CUSTOS_ERR_VALIDATION' } } });
    expect((await audit('passkey-add-failed'))[0]).toMatchObject({ actor_id: anna.id, reason: 'origin' });
    // The same challenge, now answered correctly: already used.
    const again = await c.post('/api/v1/auth/passkeys', other.register({ challenge: challengeOf(o1) }));
    expect(again.status).toBe(400);
    expect((await audit('passkey-add-failed'))[0]).toMatchObject({ reason: 'challenge' });
    expect(await stored(other.id)).toBeUndefined();
  });

  it('needs a recent re-authentication to add a passkey', async () => {
    const c = new Client(server);
    await logIn(server, c, anna);
    server.clock.advance(6 * MINUTE);
    const r = await c.post('/api/v1/auth/passkeys/options');
    expect(r).toMatchObject({ status: 403, body: { error: { code: 'CUSTOS_ERR_STEP_UP' } } });
    expect((await audit('passkey-change-denied'))[0]).toMatchObject({ actor_id: anna.id, reason: 'step-up' });
  });

  let used: { assertion: AssertionJSON; challenge: string } | undefined;

  it('logs in with password and passkey, without a TOTP code, and starts a full session', async () => {
    const c = await passwordStep();
    const options = await c.post('/api/v1/auth/passkey/options');
    expect(options).toMatchObject({
      status: 200,
      body: { rpId: 'localhost', userVerification: 'required', allowCredentials: [{ id: key.id }] },
    });
    const pending = c.cookies.get('__Host-custos-mfa') ?? '';
    const assertion = key.assert({ challenge: challengeOf(options) });
    const r = await c.post('/api/v1/auth/passkey/verify', assertion);
    expect(r).toMatchObject({ status: 200, body: { remainingMs: 15 * MINUTE } });
    const setCookie = ([] as string[])
      .concat(r.headers['set-cookie'] ?? [])
      .find((x) => x.startsWith('__Host-custos-session='));
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(c.cookies.has('__Host-custos-mfa')).toBe(false);
    expect(await c.get('/api/v1/auth/session')).toMatchObject({
      status: 200,
      body: { user: { id: anna.id, username: 'anna' } },
    });
    // The counter moved on; the login is recorded on the account and in the audit trail.
    expect((await stored(key.id))?.counter).toBe(String(key.signCount));
    const user = await server.custos.database.db
      .selectFrom('users')
      .select(['last_login_at', 'failed_logins'])
      .where('id', '=', anna.id)
      .executeTakeFirstOrThrow();
    expect(user).toEqual({ last_login_at: server.clock.now(), failed_logins: 0 });
    expect((await audit('login'))[0]).toMatchObject({
      actor_id: anna.id,
      outcome: 'success',
      client_address: '127.0.0.1',
      detail: { factor: 'passkey', passkey: passkeyHandle(key.id) },
    });
    // The pending session is over: its cookie cannot be used again.
    const stale = new Client(server);
    stale.cookies.set('__Host-custos-mfa', pending);
    expect((await stale.post('/api/v1/auth/passkey/options')).status).toBe(401);
    used = { assertion, challenge: challengeOf(options) };
  });

  it('refuses a replayed assertion and a signature counter that does not increase (clone)', async () => {
    if (!used) {
      throw new Error('needs the login test');
    }
    // The very same assertion, in a new login: its challenge is spent.
    const c = await passwordStep();
    await c.post('/api/v1/auth/passkey/options');
    expect(await c.post('/api/v1/auth/passkey/verify', used.assertion)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({
      actor_id: anna.id,
      outcome: 'denied',
      reason: 'passkey',
      detail: { check: 'challenge' },
    });
    // A correctly signed answer to a fresh challenge, but with the counter already seen.
    const d = await passwordStep();
    const options = await d.post('/api/v1/auth/passkey/options');
    const clone = key.assert({ challenge: challengeOf(options) }, { signCount: key.signCount });
    expect(await d.post('/api/v1/auth/passkey/verify', clone)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ reason: 'passkey', detail: { check: 'counter' } });
    expect((await stored(key.id))?.counter).toBe(String(key.signCount));
  });

  it('refuses an assertion made for another origin or another relying party', async () => {
    const c = await passwordStep();
    const o1 = await c.post('/api/v1/auth/passkey/options');
    const phished = key.assert({ challenge: challengeOf(o1) }, { origin: 'https://custos-login.example' });
    expect(await c.post('/api/v1/auth/passkey/verify', phished)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ reason: 'passkey', detail: { check: 'origin' } });
    const o2 = await c.post('/api/v1/auth/passkey/options');
    const otherRp = key.assert({ challenge: challengeOf(o2) }, { rpId: 'custos-login.example' });
    expect(await c.post('/api/v1/auth/passkey/verify', otherRp)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ detail: { check: 'rp-id' } });
    const o3 = await c.post('/api/v1/auth/passkey/options');
    const noUv = key.assert({ challenge: challengeOf(o3) }, { noUserVerification: true });
    expect(await c.post('/api/v1/auth/passkey/verify', noUv)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ detail: { check: 'user-verification' } });
  });

  it('refuses a tampered signature, and the challenge it spent cannot be answered again', async () => {
    const c = await passwordStep();
    const options = await c.post('/api/v1/auth/passkey/options');
    const tampered = key.assert({ challenge: challengeOf(options) }, { tamperSignature: true });
    expect(await c.post('/api/v1/auth/passkey/verify', tampered)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({
      reason: 'passkey',
      detail: { check: 'signature' },
    });
    // A good answer to the same challenge on the same pending session: single-use, pass or fail.
    const good = key.assert({ challenge: challengeOf(options) });
    expect(await c.post('/api/v1/auth/passkey/verify', good)).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ detail: { check: 'challenge' } });
    // The pending session itself is still usable with a fresh challenge.
    const fresh = await c.post('/api/v1/auth/passkey/options');
    expect(
      (await c.post('/api/v1/auth/passkey/verify', key.assert({ challenge: challengeOf(fresh) }))).status,
    ).toBe(200);
  });

  it('binds a challenge to its pending session: another login cannot answer it', async () => {
    const c = await passwordStep();
    const options = await c.post('/api/v1/auth/passkey/options');
    const d = await passwordStep();
    const r = await d.post('/api/v1/auth/passkey/verify', key.assert({ challenge: challengeOf(options) }));
    expect(r).toMatchObject(LOGIN_FAILED);
    expect((await audit('mfa-failed'))[0]).toMatchObject({ detail: { check: 'challenge' } });
  });

  it('answers a failed passkey exactly like a wrong TOTP code', async () => {
    const c = await passwordStep();
    const options = await c.post('/api/v1/auth/passkey/options');
    const bad = await c.post(
      '/api/v1/auth/passkey/verify',
      key.assert({ challenge: challengeOf(options) }, { tamperSignature: true }),
    );
    const wrongCode = await c.post('/api/v1/auth/second-factor', {
      code: totpAt(anna.secret, new Date(server.clock.now().getTime() - 10 * MINUTE)),
    });
    expect(bad.status).toBe(401);
    expect(bad.text).toBe(wrongCode.text);
  });

  it('needs the password step before the passkey step', async () => {
    const c = new Client(server);
    expect((await c.post('/api/v1/auth/passkey/options')).status).toBe(401);
    const stray = key.assert({ challenge: 'AAAA' }, { signCount: 1 });
    expect((await c.post('/api/v1/auth/passkey/verify', stray)).status).toBe(401);
  });

  it("removes one's own passkey; another user's passkey is not found", async () => {
    const handle = passkeyHandle(key.id);
    const b = new Client(server);
    await logIn(server, b, bob);
    expect((await b.get('/api/v1/auth/passkeys')).body).toEqual({ passkeys: [] });
    expect(await b.delete(`/api/v1/auth/passkeys/${handle}`)).toMatchObject({
      status: 404,
      body: { error: { code: 'CUSTOS_ERR_NOT_FOUND' } },
    });
    expect((await audit('passkey-removed'))[0]).toMatchObject({
      actor_id: bob.id,
      outcome: 'denied',
      reason: 'not-found',
    });
    expect(await stored(key.id)).toBeDefined();

    const a = new Client(server);
    await logIn(server, a, anna);
    expect((await a.delete(`/api/v1/auth/passkeys/${handle}`)).status).toBe(204);
    expect((await a.get('/api/v1/auth/passkeys')).body).toEqual({ passkeys: [] });
    expect(await stored(key.id)).toBeUndefined();
    expect((await audit('passkey-removed'))[0]).toMatchObject({ actor_id: anna.id, outcome: 'success' });
    // Without a passkey, the login offers none.
    const c = await passwordStep();
    expect((await c.post('/api/v1/auth/passkey/options')).status).toBe(404);
  });
});
