import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../src/identity/totp.ts';
import { runCli } from '../support/cli.ts';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] account.int.test.ts skipped: ${skip}`);
}

const MINUTE = 60_000;

describe.skipIf(skip)('accounts: password change, step-up, rehash, limits', () => {
  let server: TestServer;
  let dana: Staff;
  let root: Staff;
  beforeAll(async () => {
    server = await startServer({ trustedProxies: ['127.0.0.10'] });
    dana = await enrollStaff(server, new Client(server), 'dana', ['nurse']);
    root = await enrollStaff(server, new Client(server), 'root-admin', ['admin']);
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

  it('changes the password only with the old one, checks the new one, and ends the other sessions', async () => {
    const a = new Client(server);
    const b = new Client(server);
    await logIn(server, a, dana);
    await logIn(server, b, dana);
    const wrongOld = await a.post('/api/v1/auth/password', {
      oldPassword: 'not it at all',
      newPassword: 'a brand new passphrase 7',
    });
    expect(wrongOld).toMatchObject({ status: 400, body: { error: { field: 'body.oldPassword' } } });
    const weak = await a.post('/api/v1/auth/password', { oldPassword: PASSWORD, newPassword: 'short' });
    expect(weak).toMatchObject({
      status: 400,
      body: {
        error: { field: 'body.newPassword', message: 'body.newPassword: must be at least 12 characters' },
      },
    });
    const withName = await a.post('/api/v1/auth/password', {
      oldPassword: PASSWORD,
      newPassword: 'dana-is-my-name-2026',
    });
    expect(withName.body).toMatchObject({
      error: { message: 'body.newPassword: must not contain the username' },
    });
    const breached = await a.post('/api/v1/auth/password', {
      oldPassword: PASSWORD,
      newPassword: 'password1234',
    });
    expect(breached.body).toMatchObject({
      error: { message: 'body.newPassword: is in a list of commonly used or breached passwords' },
    });
    expect(
      (
        await a.post('/api/v1/auth/password', {
          oldPassword: PASSWORD,
          newPassword: 'a brand new passphrase 7',
        })
      ).status,
    ).toBe(204);
    expect((await a.get('/api/v1/auth/sessions')).status).toBe(200);
    expect((await b.get('/api/v1/auth/sessions')).status).toBe(401);
    expect((await audit('password-changed'))[0]).toMatchObject({
      actor_id: dana.id,
      detail: { sessionsEnded: 1 },
    });
    const c = new Client(server);
    expect((await c.post('/api/v1/auth/login', { username: 'dana', password: PASSWORD })).status).toBe(401);
    expect(
      (await c.post('/api/v1/auth/login', { username: 'dana', password: 'a brand new passphrase 7' })).status,
    ).toBe(200);
  });

  it('re-hashes a password stored with older argon2 parameters at the next login', async () => {
    const { PasswordHasher } = await import('../../src/identity/password.ts');
    const old = await new PasswordHasher({ memoryCost: 512, timeCost: 1, parallelism: 1 }).hash(PASSWORD);
    await server.custos.database.db
      .updateTable('users')
      .set({ password_hash: old })
      .where('id', '=', root.id)
      .execute();
    const c = new Client(server);
    expect((await c.post('/api/v1/auth/login', { username: 'root-admin', password: PASSWORD })).status).toBe(
      200,
    );
    const row = await server.custos.database.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', root.id)
      .executeTakeFirstOrThrow();
    expect(row.password_hash).not.toBe(old);
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
  });

  it('requires a re-authentication within 5 minutes for sensitive actions (step-up)', async () => {
    const a = new Client(server);
    await logIn(server, a, root);
    expect((await a.post('/api/v1/admin/users', { username: 'erin', roles: ['billing'] })).status).toBe(201);
    server.clock.advance(5 * MINUTE);
    const stale = await a.post('/api/v1/admin/users', { username: 'fay', roles: ['billing'] });
    expect(stale).toMatchObject({ status: 403, body: { error: { code: 'CUSTOS_ERR_STEP_UP' } } });
    const badReauth = await a.post('/api/v1/auth/reauth', { password: PASSWORD, code: '000000' });
    expect(badReauth.status).toBe(401);
    expect((await audit('reauth-failed'))[0]).toMatchObject({ actor_id: root.id });
    expect(
      (
        await a.post('/api/v1/auth/reauth', {
          password: PASSWORD,
          code: totpAt(root.secret, server.clock.now()),
        })
      ).status,
    ).toBe(204);
    expect((await a.post('/api/v1/admin/users', { username: 'fay', roles: ['billing'] })).status).toBe(201);
    expect((await audit('reauthenticated'))[0]).toMatchObject({ actor_id: root.id });
    server.clock.advance(30_000);
  });

  it("changes roles with step-up, ends the user's sessions, audits it, and refuses self-demotion", async () => {
    const a = new Client(server);
    await logIn(server, a, root);
    const d = new Client(server);
    await logIn(server, d, dana, 'a brand new passphrase 7');
    expect(
      (await a.post(`/api/v1/admin/users/${dana.id}/roles`, { roles: ['nurse', 'frontdesk'] })).status,
    ).toBe(204);
    expect((await d.get('/api/v1/auth/sessions')).status).toBe(401);
    // Her sessions all ended: this one, the one kept after her password change, and a half-finished login.
    expect((await audit('role-changed'))[0]).toMatchObject({
      actor_id: root.id,
      resource_id: dana.id,
      detail: { from: 'nurse', to: 'nurse,frontdesk', sessionsEnded: 3 },
    });
    const self = await a.post(`/api/v1/admin/users/${root.id}/roles`, { roles: ['clinician'] });
    expect(self).toMatchObject({ status: 400, body: { error: { field: 'roles' } } });
    expect((await a.post(`/api/v1/admin/users/${dana.id}/roles`, { roles: [] })).body).toMatchObject({
      error: { field: 'body.roles' },
    });
    server.clock.advance(6 * 60_000);
    expect((await a.post(`/api/v1/admin/users/${dana.id}/roles`, { roles: ['nurse'] })).status).toBe(403);
  });

  it("lets an admin set the practice's idle timeout, which applies to sessions at once", async () => {
    const a = new Client(server);
    await logIn(server, a, root);
    const bad = await a.request('PUT', '/api/v1/admin/settings/sessions', { idleTimeoutMinutes: 0 });
    expect(bad).toMatchObject({
      status: 400,
      body: {
        error: {
          field: 'settings.idleTimeoutMinutes',
          message: 'settings.idleTimeoutMinutes: must be at least 1',
        },
      },
    });
    const ok = await a.request('PUT', '/api/v1/admin/settings/sessions', {
      idleTimeoutMinutes: 5,
      absoluteTimeoutHours: 8,
    });
    expect(ok).toMatchObject({
      status: 200,
      body: { idleTimeoutMs: 5 * MINUTE, absoluteTimeoutMs: 8 * 60 * MINUTE },
    });
    expect((await audit('settings-changed'))[0]).toMatchObject({
      actor_id: root.id,
      detail: { idleTimeoutMinutes: 5, absoluteTimeoutHours: 8 },
    });
    const d = new Client(server);
    await logIn(server, d, dana, 'a brand new passphrase 7');
    expect(
      ((await d.get('/api/v1/auth/session')).body as { remainingMs: number }).remainingMs,
    ).toBeLessThanOrEqual(5 * MINUTE);
    server.clock.advance(5 * MINUTE);
    expect((await d.get('/api/v1/auth/sessions')).status).toBe(401);
    // The admin's own session was idle for those 5 minutes too.
    expect((await a.get('/api/v1/auth/sessions')).status).toBe(401);
  });

  it('limits request bodies', async () => {
    const c = new Client(server);
    const big = await c.post('/api/v1/auth/login', { username: 'x', password: 'y'.repeat(2 * 1024 * 1024) });
    expect(big).toMatchObject({ status: 413, body: { error: { code: 'CUSTOS_ERR_TOO_LARGE' } } });
  });

  it('believes X-Forwarded-For only from a trusted proxy', async () => {
    const direct = new Client(server, '127.0.0.11');
    await direct.post(
      '/api/v1/auth/login',
      { username: 'nobody', password: 'nothing here' },
      { headers: { 'x-forwarded-for': '127.0.0.99' } },
    );
    expect((await audit('login-failed'))[0]).toMatchObject({ client_address: '127.0.0.11' });
    const proxied = new Client(server, '127.0.0.10');
    await proxied.post(
      '/api/v1/auth/login',
      { username: 'nobody', password: 'nothing here' },
      { headers: { 'x-forwarded-for': '127.0.0.77' } },
    );
    expect((await audit('login-failed'))[0]).toMatchObject({ client_address: '127.0.0.77' });
  });
});

describe.skipIf(skip)('custos user and custos guard', () => {
  it('adds a user with a one-time enrollment link and no password, and lists blocks', async () => {
    const { cliData } = await import('../support/cli-data.ts');
    const d = await cliData();
    try {
      const add = await runCli(['user', 'add', 'Hana', '--role', 'clinician'], d.env);
      expect(add.code, add.stderr).toBe(0);
      expect(add.stdout).toMatch(
        /^enrollment link for hana \(valid until [^)]+, once\):\nhttps:\/\/localhost:8443\/enroll#[A-Za-z0-9_-]{43}\n$/,
      );
      expect(add.stdout.toLowerCase()).not.toContain('password');
      expect(await runCli(['user', 'add', 'hana', '--role', 'clinician'], d.env)).toMatchObject({
        code: 2,
        stderr: 'custos: username: is already taken\n',
      });
      expect(await runCli(['user', 'add', 'ivan', '--role', 'wizard'], d.env)).toMatchObject({ code: 2 });
      // A family name is accepted for the namesake check, and refused when it has no letters.
      expect(
        (await runCli(['user', 'add', 'joan', '--role', 'nurse', '--family-name', 'Jansen'], d.env)).code,
      ).toBe(0);
      expect(
        await runCli(['user', 'add', 'kim', '--role', 'nurse', '--family-name', '1234'], d.env),
      ).toMatchObject({
        code: 2,
        stderr: 'custos: familyName: must contain letters\n',
      });
      expect((await runCli(['user', 'disable', 'hana'], d.env)).stdout).toBe('custos: disabled hana\n');
      expect((await runCli(['user', 'list'], d.env)).stdout).toMatch(
        /^hana\tclinician\tdisabled\tnever\njoan\tnurse\tenrolling\tnever\n$/,
      );
      expect(await runCli(['guard', 'blocks'], d.env)).toMatchObject({ code: 0, stdout: '' });
      expect(await runCli(['guard', 'blocks', '--lift', '127.0.0.2'], d.env)).toMatchObject({
        code: 1,
        stdout: 'custos: 127.0.0.2 is not blocked\n',
      });
    } finally {
      await d.cleanup();
    }
  }, 120_000);
});
