import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../src/identity/totp.ts';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] auth.int.test.ts skipped: ${skip}`);
}

const MINUTE = 60_000;

describe.skipIf(skip)('staff login over HTTPS', () => {
  let server: TestServer;
  let anna: Staff;
  beforeAll(async () => {
    server = await startServer();
    anna = await enrollStaff(server, new Client(server), 'anna', ['clinician']);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  const audit = async (action: string) =>
    server.custos.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', action)
      .orderBy('seq', 'desc')
      .execute();

  it('logs in with password and TOTP, and sets a __Host- session cookie that is HttpOnly, Secure, SameSite=Strict', async () => {
    const c = new Client(server);
    const r1 = await c.post('/api/v1/auth/login', { username: 'ANNA', password: PASSWORD });
    expect(r1).toMatchObject({ status: 200, body: { next: 'second-factor' } });
    const pending = c.cookies.get('__Host-custos-mfa');
    expect(pending).toBeDefined();
    const r2 = await c.post('/api/v1/auth/second-factor', { code: totpAt(anna.secret, server.clock.now()) });
    expect(r2.status).toBe(200);
    const setCookie = ([] as string[])
      .concat(r2.headers['set-cookie'] ?? [])
      .find((x) => x.startsWith('__Host-custos-session='));
    expect(setCookie).toMatch(/; Path=\//);
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; Secure/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).not.toMatch(/Domain=/);
    const token = c.cookies.get('__Host-custos-session') ?? '';
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(token).not.toBe(pending);
    expect(c.cookies.has('__Host-custos-mfa')).toBe(false);
    expect(r2.body).toMatchObject({ remainingMs: 15 * MINUTE });
    const me = await c.get('/api/v1/auth/session');
    expect(me).toMatchObject({
      status: 200,
      body: { user: { id: anna.id, username: 'anna', roles: ['clinician'] } },
    });
    // Only the hash of the id is stored.
    const stored = await server.custos.database.db.selectFrom('sessions').select('id_hash').execute();
    expect(stored.some((s) => s.id_hash.toString('base64url') === token)).toBe(false);
    const [login] = await audit('login');
    expect(login).toMatchObject({
      actor_id: anna.id,
      outcome: 'success',
      client_address: '127.0.0.1',
      resource_id: anna.id,
    });
    server.clock.advance(30_000);
  });

  it('accepts a TOTP code only in its window and never twice', async () => {
    const c = new Client(server);
    await c.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD });
    const old = totpAt(anna.secret, new Date(server.clock.now().getTime() - 2 * 30_000));
    expect((await c.post('/api/v1/auth/second-factor', { code: old })).status).toBe(401);
    const code = totpAt(anna.secret, server.clock.now());
    expect((await c.post('/api/v1/auth/second-factor', { code })).status).toBe(200);
    // Replay in another login within the same 30 s step.
    const d = new Client(server);
    await d.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD });
    const replay = await d.post('/api/v1/auth/second-factor', { code });
    expect(replay).toMatchObject({ status: 401, body: { error: { code: 'CUSTOS_ERR_LOGIN_FAILED' } } });
    expect((await audit('mfa-failed'))[0]).toMatchObject({
      actor_id: anna.id,
      reason: 'totp',
      outcome: 'denied',
    });
    server.clock.advance(30_000);
  });

  it('accepts each recovery code once', async () => {
    const code = anna.recoveryCodes[0] ?? '';
    const c = new Client(server);
    await c.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD });
    expect((await c.post('/api/v1/auth/second-factor', { recoveryCode: code.toLowerCase() })).status).toBe(
      200,
    );
    const d = new Client(server);
    await d.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD });
    expect((await d.post('/api/v1/auth/second-factor', { recoveryCode: code })).status).toBe(401);
    expect((await audit('recovery-code-used')).length).toBe(1);
  });

  it('logs off after 15 idle minutes, keeps an active session alive, and ends every session after 12 hours', async () => {
    const c = new Client(server);
    await logIn(server, c, anna);
    server.clock.advance(14 * MINUTE);
    expect((await c.get('/api/v1/auth/sessions')).status).toBe(200);
    server.clock.advance(14 * MINUTE);
    expect((await c.get('/api/v1/auth/sessions')).status).toBe(200);
    // Reading the remaining time does not count as activity.
    const left = await c.get('/api/v1/auth/session');
    expect((left.body as { remainingMs: number }).remainingMs).toBe(15 * MINUTE);
    server.clock.advance(15 * MINUTE);
    const late = await c.get('/api/v1/auth/sessions');
    expect(late).toMatchObject({ status: 401, body: { error: { code: 'CUSTOS_ERR_UNAUTHENTICATED' } } });
    expect((await audit('session-timeout'))[0]).toMatchObject({ actor_id: anna.id, reason: 'idle-timeout' });

    const d = new Client(server);
    await logIn(server, d, anna);
    for (let i = 0; i < 60; i++) {
      server.clock.advance(14 * MINUTE);
      const r = await d.get('/api/v1/auth/sessions');
      if (r.status !== 200) {
        expect(r.status).toBe(401);
        break;
      }
    }
    expect((await audit('session-timeout'))[0]).toMatchObject({ reason: 'absolute-timeout' });
  });

  it('ends the session on the server at logout', async () => {
    const c = new Client(server);
    await logIn(server, c, anna);
    const token = c.cookies.get('__Host-custos-session') ?? '';
    expect((await c.post('/api/v1/auth/logout')).status).toBe(204);
    const replayed = new Client(server);
    replayed.cookies.set('__Host-custos-session', token);
    expect((await replayed.get('/api/v1/auth/sessions')).status).toBe(401);
    expect((await audit('logout'))[0]).toMatchObject({ actor_id: anna.id, outcome: 'success' });
  });

  it('lists own sessions and ends one; another user cannot end it', async () => {
    const a = new Client(server);
    const b = new Client(server);
    await logIn(server, a, anna);
    await logIn(server, b, anna);
    const list = (await a.get('/api/v1/auth/sessions')).body as {
      sessions: { id: string }[];
      current: string;
    };
    expect(list.sessions.length).toBeGreaterThanOrEqual(2);
    const other = list.sessions.find((s) => s.id !== list.current)?.id ?? '';
    const bob = await enrollStaff(server, new Client(server), 'bob', ['nurse']);
    const bobClient = new Client(server);
    await logIn(server, bobClient, bob);
    expect((await bobClient.delete(`/api/v1/auth/sessions/${other}`)).status).toBe(404);
    expect((await a.delete(`/api/v1/auth/sessions/${other}`)).status).toBe(204);
    expect((await audit('session-revoked'))[0]).toMatchObject({ actor_id: anna.id, outcome: 'success' });
  });

  it('rejects unsafe requests without a same-origin Origin header (CSRF)', async () => {
    const c = new Client(server);
    expect(
      (await c.post('/api/v1/auth/login', { username: 'anna', password: PASSWORD }, { origin: null })).status,
    ).toBe(403);
    const evil = await c.post(
      '/api/v1/auth/login',
      { username: 'anna', password: PASSWORD },
      { origin: 'https://evil.example' },
    );
    expect(evil).toMatchObject({ status: 403, body: { error: { code: 'CUSTOS_ERR_CSRF' } } });
  });

  it('answers an unknown user exactly like a wrong password', async () => {
    const c = new Client(server, '127.0.0.9');
    const unknown = await c.post('/api/v1/auth/login', {
      username: 'nobody-here',
      password: 'wrong wrong wrong',
    });
    const wrong = await c.post('/api/v1/auth/login', { username: 'bob', password: 'wrong wrong wrong' });
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(401);
    expect(unknown.text).toBe(wrong.text);
    const failed = await audit('login-failed');
    expect(failed.slice(0, 2).map((e) => e.reason)).toEqual(['bad-password', 'unknown-user']);
    // Never the attempted password, never the attempted unknown username in the clear.
    expect(JSON.stringify(failed)).not.toContain('wrong wrong');
    expect(JSON.stringify(failed)).not.toContain('nobody-here');
  });

  it('validates input and names the field', async () => {
    const c = new Client(server);
    const r = await c.post('/api/v1/auth/login', { username: 'anna' });
    expect(r).toMatchObject({
      status: 400,
      body: { error: { code: 'CUSTOS_ERR_VALIDATION', field: 'body.password' } },
    });
    const bad = await c.request('POST', '/api/v1/auth/login', '{not json');
    expect(bad.status).toBe(400);
  });
});
