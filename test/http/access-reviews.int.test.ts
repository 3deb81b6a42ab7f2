import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../src/identity/totp.ts';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, PASSWORD, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] access-reviews.int.test.ts skipped: ${skip}`);
}

const MINUTE = 60_000;

describe.skipIf(skip)('access reviews over HTTPS', () => {
  let server: TestServer;
  let olga: Staff;
  const staff: Record<string, Staff> = {};
  beforeAll(async () => {
    server = await startServer();
    olga = await enrollStaff(server, new Client(server), 'olga', ['privacy_officer']);
    for (const role of ['admin', 'clinician', 'nurse', 'frontdesk', 'billing']) {
      staff[role] = await enrollStaff(server, new Client(server), `${role}-user`, [role]);
    }
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  const audit = (action: string) =>
    server.custos.database.db
      .selectFrom('audit_entries')
      .selectAll()
      .where('action', '=', action)
      .orderBy('seq', 'desc')
      .execute();
  const officer = async () => {
    const c = new Client(server);
    await logIn(server, c, olga);
    return c;
  };
  const status = async (id: string) =>
    (
      await server.custos.database.db
        .selectFrom('users')
        .select('status')
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
    ).status;

  it('answers every role but the privacy officer with a 404 on both routes', async () => {
    const target = staff.clinician?.id ?? '';
    for (const role of ['admin', 'clinician', 'nurse', 'frontdesk', 'billing']) {
      const c = new Client(server);
      await logIn(server, c, staff[role] as Staff);
      const list = await c.get('/api/v1/access-reviews');
      expect(list, role).toMatchObject({ status: 404, body: { error: { code: 'CUSTOS_ERR_NOT_FOUND' } } });
      for (const decision of ['certified', 'revoked']) {
        const post = await c.post(`/api/v1/access-reviews/${target}`, { decision });
        expect(post, role).toMatchObject({
          status: 404,
          body: { error: { code: 'CUSTOS_ERR_NOT_FOUND' } },
        });
      }
    }
    expect(await status(target)).toBe('active');
    expect(await audit('access-certified')).toEqual([]);
    expect((await new Client(server).get('/api/v1/access-reviews')).status).toBe(401);
  });

  it('lets the privacy officer list accounts, certify one and revoke another', async () => {
    const a = await officer();
    const list = await a.get('/api/v1/access-reviews');
    expect(list.status).toBe(200);
    const body = list.body as {
      asOf: string;
      dormantDays: number;
      reviewIntervalDays: number;
      users: Record<string, unknown>[];
    };
    expect(body).toMatchObject({
      asOf: server.clock.now().toISOString(),
      dormantDays: 90,
      reviewIntervalDays: 90,
    });
    expect(body.users.map((u) => u.username)).toEqual([
      'admin-user',
      'billing-user',
      'clinician-user',
      'frontdesk-user',
      'nurse-user',
      'olga',
    ]);
    expect(body.users.find((u) => u.username === 'clinician-user')).toEqual({
      id: staff.clinician?.id,
      username: 'clinician-user',
      roles: ['clinician'],
      status: 'active',
      createdAt: expect.stringMatching(/^2026-11-23T09:/),
      lastLoginAt: expect.stringMatching(/^2026-11-23T09:/),
      careTeamSize: 0,
      activeBreakGlassGrants: 0,
      dormant: false,
      lastReview: null,
      overdue: true,
    });
    expect((await audit('access-review-listed'))[0]).toMatchObject({ actor_id: olga.id, outcome: 'success' });

    const certify = await a.post(`/api/v1/access-reviews/${staff.clinician?.id}`, {
      decision: 'certified',
      comment: 'matches the rota',
    });
    expect(certify).toMatchObject({
      status: 201,
      body: {
        userId: staff.clinician?.id,
        decision: 'certified',
        reviewerId: olga.id,
        reviewedAt: server.clock.now().toISOString(),
        comment: 'matches the rota',
      },
    });
    expect((await audit('access-certified'))[0]).toMatchObject({
      actor_id: olga.id,
      resource_id: staff.clinician?.id,
      outcome: 'success',
      detail: { review: (certify.body as { id: string }).id, roles: 'clinician' },
    });

    const billing = staff.billing as Staff;
    const b = new Client(server);
    await logIn(server, b, billing);
    const revoke = await a.post(`/api/v1/access-reviews/${billing.id}`, { decision: 'revoked' });
    expect(revoke).toMatchObject({
      status: 201,
      body: { userId: billing.id, decision: 'revoked', comment: null },
    });
    expect(await status(billing.id)).toBe('disabled');
    expect((await b.get('/api/v1/auth/sessions')).status).toBe(401);
    expect((await audit('access-revoked'))[0]).toMatchObject({ actor_id: olga.id, resource_id: billing.id });
    expect((await audit('user-disabled'))[0]).toMatchObject({ actor_id: olga.id, resource_id: billing.id });

    const after = (await a.get('/api/v1/access-reviews')).body as typeof body;
    expect(after.users.find((u) => u.username === 'clinician-user')).toMatchObject({
      overdue: false,
      lastReview: { decision: 'certified', reviewer: 'olga', comment: 'matches the rota' },
    });
    expect(after.users.find((u) => u.username === 'billing-user')).toMatchObject({
      status: 'disabled',
      overdue: false,
      lastReview: { decision: 'revoked', reviewer: 'olga' },
    });
    // Her own access is for someone else to review.
    const self = await a.post(`/api/v1/access-reviews/${olga.id}`, { decision: 'certified' });
    expect(self).toMatchObject({ status: 400, body: { error: { field: 'userId' } } });
  });

  it('answers an unknown user id and a user id of another practice with the same 404', async () => {
    const other = randomUUID();
    const stranger = randomUUID();
    const owner = server.custos.database.owner;
    await owner
      .insertInto('practices')
      .values({ id: other, name: 'Other', created_at: new Date() })
      .execute();
    await owner
      .insertInto('users')
      .values({
        id: stranger,
        practice_id: other,
        username: 'stranger',
        roles: ['clinician'],
        status: 'active',
        password_hash: null,
        password_changed_at: null,
        totp_secret: null,
        totp_last_step: null,
        locked_until: null,
        last_login_at: null,
        created_at: new Date(),
      })
      .execute();
    const a = await officer();
    const unknown = await a.post(`/api/v1/access-reviews/${randomUUID()}`, { decision: 'revoked' });
    const foreign = await a.post(`/api/v1/access-reviews/${stranger}`, { decision: 'revoked' });
    expect(unknown.status).toBe(404);
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual(unknown.body);
    expect(
      (await owner.selectFrom('users').select('status').where('id', '=', stranger).executeTakeFirstOrThrow())
        .status,
    ).toBe('active');
    expect((await audit('access-revoked')).slice(0, 2).map((e) => e.reason)).toEqual([
      'not-found',
      'not-found',
    ]);
  });

  it('names the field of every validation error', async () => {
    const a = await officer();
    const target = staff.nurse?.id ?? '';
    const cases: [string, unknown, string][] = [
      ['not-a-uuid', { decision: 'certified' }, 'params.userId'],
      [target, { decision: 'maybe' }, 'body.decision'],
      [target, {}, 'body.decision'],
      [target, { decision: 'certified', comment: 'x'.repeat(201) }, 'body.comment'],
      [target, { decision: 'certified', comment: 7 }, 'body.comment'],
      [target, { decision: 'certified', comment: 'two\nlines' }, 'comment'],
    ];
    for (const [id, body, field] of cases) {
      const r = await a.post(`/api/v1/access-reviews/${id}`, body);
      expect(r, field).toMatchObject({
        status: 400,
        body: { error: { code: 'CUSTOS_ERR_VALIDATION', field } },
      });
    }
    const extra = await a.post(`/api/v1/access-reviews/${target}`, { decision: 'certified', reviewer: 'x' });
    expect(extra).toMatchObject({ status: 400, body: { error: { code: 'CUSTOS_ERR_VALIDATION' } } });
    expect(await audit('access-certified')).not.toContainEqual(
      expect.objectContaining({ resource_id: target }),
    );
  });

  it('needs a recent re-authentication (step-up) to revoke', async () => {
    const a = await officer();
    const nurse = staff.nurse as Staff;
    server.clock.advance(5 * MINUTE + 1000);
    const stale = await a.post(`/api/v1/access-reviews/${nurse.id}`, { decision: 'revoked' });
    expect(stale).toMatchObject({ status: 403, body: { error: { code: 'CUSTOS_ERR_STEP_UP' } } });
    expect(await status(nurse.id)).toBe('active');
    const reauth = await a.post('/api/v1/auth/reauth', {
      password: PASSWORD,
      code: totpAt(olga.secret, server.clock.now()),
    });
    expect(reauth.status).toBe(204);
    server.clock.advance(30_000);
    expect((await a.post(`/api/v1/access-reviews/${nurse.id}`, { decision: 'revoked' })).status).toBe(201);
    expect(await status(nurse.id)).toBe('disabled');
  });

  it("lets an administrator set the practice's access-review periods (step-up, audited)", async () => {
    const a = new Client(server);
    await logIn(server, a, staff.admin as Staff);
    expect(
      (await a.request('PUT', '/api/v1/admin/settings/sessions', { idleTimeoutMinutes: 20 })).status,
    ).toBe(200);
    const bad = await a.request('PUT', '/api/v1/admin/settings/access', { dormantDays: 3 });
    expect(bad).toMatchObject({
      status: 400,
      body: { error: { field: 'settings.dormantDays', message: 'settings.dormantDays: must be at least 7' } },
    });
    const ok = await a.request('PUT', '/api/v1/admin/settings/access', {
      dormantDays: 30,
      reviewIntervalDays: 180,
    });
    expect(ok).toMatchObject({
      status: 200,
      body: { dormantDays: 30, reviewIntervalDays: 180, breakGlassReviewDays: 7 },
    });
    expect((await audit('settings-changed'))[0]).toMatchObject({
      actor_id: staff.admin?.id,
      detail: { dormantDays: 30, reviewIntervalDays: 180 },
    });
    // The session settings stored beside them are untouched.
    expect(await server.services.settings.sessionLimits(server.custos.practiceId)).toEqual({
      idleTimeoutMs: 20 * MINUTE,
      absoluteTimeoutMs: 12 * 60 * MINUTE,
    });
    const o = await officer();
    expect((await o.get('/api/v1/access-reviews')).body).toMatchObject({
      dormantDays: 30,
      reviewIntervalDays: 180,
    });
    expect((await o.request('PUT', '/api/v1/admin/settings/access', { dormantDays: 60 })).status).toBe(404);
  });
});
