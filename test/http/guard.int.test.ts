import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] guard.int.test.ts skipped: ${skip}`);
}

const MINUTE = 60_000;

describe.skipIf(skip)('the server and its defenses', () => {
  let server: TestServer;
  let carl: Staff;
  let admin: Staff;
  beforeAll(async () => {
    server = await startServer();
    carl = await enrollStaff(server, new Client(server), 'carl', ['clinician']);
    admin = await enrollStaff(server, new Client(server), 'ada', ['admin']);
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

  it('refuses TLS 1.1 and accepts TLS 1.2', async () => {
    const connect = (maxVersion: tls.SecureVersion) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect(
          {
            host: '127.0.0.1',
            port: server.port,
            ca: server.ca,
            servername: 'localhost',
            minVersion: 'TLSv1',
            maxVersion,
          },
          () => {
            resolve(s.getProtocol() ?? '');
            s.end();
          },
        );
        s.on('error', reject);
      });
    await expect(connect('TLSv1.1')).rejects.toThrow();
    expect(await connect('TLSv1.2')).toBe('TLSv1.2');
    expect(await connect('TLSv1.3')).toBe('TLSv1.3');
  });

  it('sends strict security headers, no CORS, and no caching of API responses', async () => {
    const c = new Client(server);
    const r = await c.get('/api/v1/auth/session', { headers: { origin: 'https://evil.example' } });
    expect(r.headers['content-security-policy']).toMatch(/default-src 'none'/);
    expect(r.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
    expect(r.headers['strict-transport-security']).toMatch(/max-age=31536000/);
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    const health = await c.get('/healthz');
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('serves the OpenAPI 3.1 document and a readable docs page', async () => {
    const c = new Client(server);
    const doc = await c.get('/api/openapi.json');
    expect(doc.body).toMatchObject({
      openapi: '3.1.0',
      paths: { '/api/v1/auth/login': { post: { requestBody: expect.anything() } } },
    });
    const page = await c.get('/api/docs');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('/api/v1/auth/login');
    expect(page.text).not.toContain('<script');
  });

  it('locks an account after 5 failures with backoff 1, 2 minutes that expires by itself', async () => {
    const c = new Client(server, '127.0.0.4');
    for (let i = 0; i < 5; i++) {
      expect(
        (await c.post('/api/v1/auth/login', { username: 'carl', password: 'not the password' })).status,
      ).toBe(401);
    }
    expect((await audit('lockout'))[0]).toMatchObject({ resource_id: carl.id, detail: { minutes: 1 } });
    // Locked: even the right password fails, and costs no argon2 computation.
    const before = server.services.hasher.computations;
    expect((await c.post('/api/v1/auth/login', { username: 'carl', password: PASSWORD })).status).toBe(401);
    expect(server.services.hasher.computations).toBe(before);
    server.clock.advance(MINUTE + 1000);
    for (let i = 0; i < 5; i++) {
      await c.post('/api/v1/auth/login', { username: 'carl', password: 'still not it' });
    }
    expect((await audit('lockout'))[0]).toMatchObject({ detail: { minutes: 2 } });
    server.clock.advance(MINUTE + 1000);
    expect((await c.post('/api/v1/auth/login', { username: 'carl', password: PASSWORD })).status).toBe(401);
    server.clock.advance(MINUTE);
    await logIn(server, c, carl);
  });

  it('throttles login attempts per address (30 a minute) before any hashing', async () => {
    const c = new Client(server, '127.0.0.13');
    for (let i = 0; i < 30; i++) {
      expect(
        (await c.post('/api/v1/auth/login', { username: 'nobody-13', password: 'not a password' })).status,
      ).toBe(401);
    }
    const before = server.services.hasher.computations;
    const throttled = await c.post('/api/v1/auth/login', {
      username: 'nobody-13',
      password: 'not a password',
    });
    expect(throttled).toMatchObject({ status: 429, body: { error: { code: 'CUSTOS_ERR_THROTTLED' } } });
    expect(server.services.hasher.computations).toBe(before);
    expect((await audit('login-failed'))[0]).toMatchObject({
      client_address: '127.0.0.13',
      reason: 'throttled',
    });
    // Another address is not affected, and the window passes.
    expect(
      (
        await new Client(server, '127.0.0.14').post('/api/v1/auth/login', {
          username: 'nobody-14',
          password: 'x',
        })
      ).status,
    ).toBe(401);
    server.clock.advance(61_000);
    expect(
      (await c.post('/api/v1/auth/login', { username: 'nobody-13', password: 'not a password' })).status,
    ).toBe(401);
  });

  it('blocks an address that fails against 5 usernames (credential stuffing), not its neighbour', async () => {
    const attacker = new Client(server, '127.0.0.2');
    for (const u of ['u1', 'u2', 'u3', 'u4', 'u5']) {
      expect(
        (await attacker.post('/api/v1/auth/login', { username: u, password: 'Summer2026!!' })).status,
      ).toBe(401);
    }
    const blocked = await attacker.post('/api/v1/auth/login', { username: 'carl', password: PASSWORD });
    expect(blocked).toMatchObject({ status: 403, body: { error: { code: 'CUSTOS_ERR_BLOCKED' } } });
    expect((await audit('ip-blocked'))[0]).toMatchObject({
      resource_id: '127.0.0.2',
      reason: 'credential-stuffing',
    });
    // A blocked address triggers no password hashing at all.
    const before = server.services.hasher.computations;
    for (let i = 0; i < 10; i++) {
      expect(
        (await attacker.post('/api/v1/auth/login', { username: 'carl', password: PASSWORD })).status,
      ).toBe(403);
    }
    expect(server.services.hasher.computations).toBe(before);
    const neighbour = new Client(server, '127.0.0.3');
    await logIn(server, neighbour, carl);
    // The block lifts by itself after an hour, or an admin lifts it.
    const a = new Client(server, '127.0.0.5');
    await logIn(server, a, admin);
    const list = await a.get('/api/v1/admin/blocks');
    expect((list.body as { blocks: { address: string }[] }).blocks.map((b) => b.address)).toContain(
      '127.0.0.2',
    );
    expect((await a.delete('/api/v1/admin/blocks/127.0.0.2')).status).toBe(204);
    expect((await audit('ip-unblocked'))[0]).toMatchObject({ actor_id: admin.id, resource_id: '127.0.0.2' });
    expect((await attacker.post('/api/v1/auth/login', { username: 'x', password: 'y' })).status).toBe(401);
  });

  it('rejects injection attempts with 400, audits them, and blocks after 3 within 10 minutes', async () => {
    const c = new Client(server, '127.0.0.6');
    const r = await c.post('/api/v1/auth/login', { username: "x' OR '1'='1", password: 'irrelevant' });
    expect(r).toMatchObject({
      status: 400,
      body: { error: { code: 'CUSTOS_ERR_REJECTED', field: 'body.username' } },
    });
    expect((await audit('injection-attempt'))[0]).toMatchObject({
      client_address: '127.0.0.6',
      reason: 'sql-injection',
      outcome: 'denied',
    });
    expect((await c.get('/api/v1/auth/session?q=%3Cscript%3Ealert(1)%3C/script%3E')).status).toBe(400);
    expect((await c.get('/api/v1/../../etc/passwd')).status).toBe(400);
    expect((await c.get('/healthz')).status).toBe(403);
    expect((await audit('ip-blocked'))[0]).toMatchObject({ resource_id: '127.0.0.6', reason: 'injection' });
    // Real names and clinical phrases pass.
    const ok = new Client(server, '127.0.0.7');
    for (const name of ["O'Brien", 'drop-in session', '1=1 ratio']) {
      expect(
        (await ok.post('/api/v1/auth/login', { username: name, password: 'whatever it is' })).status,
      ).toBe(401);
    }
  });

  it('keeps account administration to admins and audits it; a non-admin gets 404', async () => {
    const c = new Client(server, '127.0.0.8');
    await logIn(server, c, carl);
    expect((await c.get('/api/v1/admin/users')).status).toBe(404);
    expect((await c.post(`/api/v1/admin/users/${carl.id}/disable`)).status).toBe(404);
    const a = new Client(server, '127.0.0.8');
    await logIn(server, a, admin);
    const created = await a.post('/api/v1/admin/users', { username: 'Dora', roles: ['frontdesk'] });
    expect(created).toMatchObject({
      status: 201,
      body: {
        username: 'dora',
        enrollmentLink: expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+\/enroll#[A-Za-z0-9_-]{43}$/),
      },
    });
    expect(
      (await a.post('/api/v1/admin/users', { username: 'DORA', roles: ['frontdesk'] })).body,
    ).toMatchObject({ error: { field: 'username' } });
    expect((await a.post('/api/v1/admin/users', { username: 'eve', roles: ['wizard'] })).body).toMatchObject({
      error: { field: 'roles' },
    });
    expect((await a.post(`/api/v1/admin/users/${carl.id}/disable`)).status).toBe(204);
    expect((await c.get('/api/v1/auth/sessions')).status).toBe(401);
    expect((await audit('user-disabled'))[0]).toMatchObject({ actor_id: admin.id, resource_id: carl.id });
    expect((await a.post(`/api/v1/admin/users/${carl.id}/enable`)).status).toBe(204);
    expect((await audit('user-enabled'))[0]).toMatchObject({ actor_id: admin.id, resource_id: carl.id });
    expect((await a.post(`/api/v1/admin/users/${carl.id}/unlock`)).status).toBe(204);
    expect((await audit('unlock'))[0]).toMatchObject({ actor_id: admin.id, resource_id: carl.id });
    const dora = (created.body as { id: string }).id;
    expect((await audit('user-added'))[0]).toMatchObject({
      actor_id: admin.id,
      resource_id: dora,
      detail: { roles: 'frontdesk' },
    });
    // Enrollment of the earlier accounts was audited too.
    expect((await audit('mfa-enrolled')).map((e) => e.resource_id)).toEqual(
      expect.arrayContaining([carl.id, admin.id]),
    );
    expect((await a.post('/api/v1/admin/users/not-a-uuid/disable')).body).toMatchObject({
      error: { field: 'params.id' },
    });
    expect((await a.post('/api/v1/admin/users/00000000-0000-4000-8000-000000000000/disable')).status).toBe(
      404,
    );
  });
});
