import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity } from '../../test/support/fixtures.ts';
import { FakeClock } from '../../test/support/http.ts';
import { isCustosError } from '../errors.ts';
import { buildServices, type Services } from '../http/services.ts';
import { PasswordHasher } from '../identity/password.ts';
import { type AccessContext, accessContext, systemContext } from './context.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] reviews.int.test.ts skipped: ${skip}`);
}

const DAY = 86_400_000;

describe.skipIf(skip)('access reviews', () => {
  let custos: TestCustos;
  let s: Services;
  let clock: FakeClock;
  let sys: AccessContext;

  beforeEach(async () => {
    clock = new FakeClock();
    custos = await openTestCustos({ clock: clock.now });
    s = buildServices(custos, {
      clock: clock.now,
      hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
    });
    sys = systemContext({ practiceId: custos.practiceId, purpose: 'operations', requestId: randomUUID() });
  }, 120_000);
  afterEach(async () => {
    await custos?.cleanup();
  });

  const db = () => custos.database.db;

  /** An account as the operator creates it, then put in the given state directly. */
  async function account(
    username: string,
    roles: string[],
    state: { status?: string; lastLoginAt?: Date | null } = {},
  ): Promise<string> {
    const { userId } = await s.accounts.add(sys, { username, roles });
    await db()
      .updateTable('users')
      .set({ status: state.status ?? 'active', last_login_at: state.lastLoginAt ?? null })
      .where('id', '=', userId)
      .execute();
    return userId;
  }

  const as = (id: string, role: string): AccessContext =>
    accessContext({
      actor: { kind: 'user', id },
      role,
      practiceId: custos.practiceId,
      purpose: 'operations',
      sessionId: 'sess-test',
      clientAddress: '127.0.0.1',
      requestId: randomUUID(),
    });

  const entries = (action: string) =>
    db().selectFrom('audit_entries').selectAll().where('action', '=', action).orderBy('seq').execute();

  const status = async (id: string) =>
    (await db().selectFrom('users').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;

  const rejection = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return e;
    }
    throw new Error('expected a rejection');
  };

  it('lists every account with roles, care teams, break-glass grants, last login, dormant and overdue', async () => {
    const t0 = clock.now();
    const officer = await account('olga', ['privacy_officer'], { lastLoginAt: t0 });
    const alice = await account('alice', ['clinician', 'nurse'], {
      lastLoginAt: new Date(t0.getTime() - DAY),
    });
    const bob = await account('bob', ['nurse'], { status: 'enrolling' });
    const carol = await account('carol', ['billing'], { status: 'disabled' });
    const p = [] as string[];
    for (let i = 0; i < 4; i++) {
      p.push((await custos.chart.createPatient(sys, identity())).id);
    }
    const member = (patient: string, user: string, starts: number, ends: number | null) => ({
      practice_id: custos.practiceId,
      patient_id: patient,
      user_id: user,
      starts_at: new Date(t0.getTime() + starts),
      ends_at: ends === null ? null : new Date(t0.getTime() + ends),
      added_by: 'system',
    });
    await db()
      .insertInto('care_team')
      .values([
        member(p[0]!, alice, -DAY, null), // current
        member(p[1]!, alice, -DAY, DAY), // current, ends tomorrow
        member(p[2]!, alice, -2 * DAY, -DAY), // ended
        member(p[3]!, alice, DAY, null), // starts tomorrow
        member(p[3]!, bob, -DAY, null),
      ])
      .execute();
    const grant = (user: string, starts: number, expires: number, ended: number | null) => ({
      id: randomUUID(),
      practice_id: custos.practiceId,
      user_id: user,
      patient_id: p[0]!,
      reason_category: 'emergency-treatment',
      reason: Buffer.from('sealed'),
      starts_at: new Date(t0.getTime() + starts),
      expires_at: new Date(t0.getTime() + expires),
      ended_at: ended === null ? null : new Date(t0.getTime() + ended),
      disposition: null,
      review_comment: null,
      reviewed_by: null,
      reviewed_at: null,
    });
    await db()
      .insertInto('break_glass_grants')
      .values([
        grant(alice, -3600_000, 3600_000, null), // in force
        grant(alice, -2 * DAY, -DAY, null), // expired
        grant(alice, -3600_000, 3600_000, -60_000), // ended early
      ])
      .execute();
    clock.advance(60_000);
    const reviewedAt = clock.now();
    await s.reviews.certify(as(officer, 'privacy_officer'), alice, 'roles match the job');
    clock.advance(60_000);
    const now = clock.now();

    const list = await s.reviews.list(as(officer, 'privacy_officer'), now);

    const created = (id: string) =>
      db().selectFrom('users').select('created_at').where('id', '=', id).executeTakeFirstOrThrow();
    expect(list).toEqual({
      asOf: now,
      dormantDays: 90,
      reviewIntervalDays: 90,
      users: [
        {
          id: alice,
          username: 'alice',
          roles: ['clinician', 'nurse'],
          status: 'active',
          createdAt: (await created(alice)).created_at,
          lastLoginAt: new Date(t0.getTime() - DAY),
          careTeamSize: 2,
          activeBreakGlassGrants: 1,
          dormant: false,
          lastReview: {
            decision: 'certified',
            reviewerId: officer,
            reviewer: 'olga',
            at: reviewedAt,
            comment: 'roles match the job',
          },
          overdue: false,
        },
        {
          id: bob,
          username: 'bob',
          roles: ['nurse'],
          status: 'enrolling',
          createdAt: (await created(bob)).created_at,
          lastLoginAt: null,
          careTeamSize: 1,
          activeBreakGlassGrants: 0,
          dormant: false,
          lastReview: null,
          overdue: true,
        },
        {
          id: carol,
          username: 'carol',
          roles: ['billing'],
          status: 'disabled',
          createdAt: (await created(carol)).created_at,
          lastLoginAt: null,
          careTeamSize: 0,
          activeBreakGlassGrants: 0,
          dormant: false,
          lastReview: null,
          overdue: false,
        },
        {
          id: officer,
          username: 'olga',
          roles: ['privacy_officer'],
          status: 'active',
          createdAt: (await created(officer)).created_at,
          lastLoginAt: t0,
          careTeamSize: 0,
          activeBreakGlassGrants: 0,
          dormant: false,
          lastReview: null,
          overdue: true,
        },
      ],
    });
    expect((await entries('access-review-listed')).at(-1)).toMatchObject({
      actor_kind: 'user',
      actor_id: officer,
      resource_type: 'practice',
      resource_id: custos.practiceId,
      outcome: 'success',
      detail: { users: 4, overdue: 2, dormant: 0 },
    });
  });

  it('disables accounts unused for 90 days, once, each with an audit entry (fake clock)', async () => {
    const t0 = clock.now();
    const dana = await account('dana', ['clinician'], { lastLoginAt: t0 });
    const eve = await account('eve', ['nurse'], { status: 'enrolling' }); // never logged in
    const gone = await account('gone', ['nurse'], { status: 'disabled' });
    clock.advance(2 * DAY);
    const frank = await account('frank', ['frontdesk'], { lastLoginAt: clock.now() });
    const session = await s.sessions.create({
      userId: dana,
      practiceId: custos.practiceId,
      kind: 'full',
      clientAddress: '127.0.0.1',
      userAgentHash: null,
    });

    clock.advance(88 * DAY - 1);
    expect(await s.reviews.disableDormant(sys, clock.now())).toEqual([]);
    expect(await entries('account-disabled')).toEqual([]);

    clock.advance(1); // exactly 90 days since dana's last login and eve's creation
    const at = clock.now();
    expect(await s.reviews.disableDormant(sys, at)).toEqual([
      { id: dana, username: 'dana', lastLoginAt: t0 },
      { id: eve, username: 'eve', lastLoginAt: null },
    ]);
    expect([await status(dana), await status(eve), await status(frank), await status(gone)]).toEqual([
      'disabled',
      'disabled',
      'active',
      'disabled',
    ]);
    expect(
      await db()
        .selectFrom('sessions')
        .select(['ended_at', 'end_reason'])
        .where('id_hash', '=', session.idHash)
        .executeTakeFirstOrThrow(),
    ).toEqual({ ended_at: at, end_reason: 'account-disabled' });
    const audit = await entries('account-disabled');
    expect(audit).toHaveLength(2);
    expect(audit[0]).toMatchObject({
      at,
      practice_id: custos.practiceId,
      actor_kind: 'system',
      actor_id: 'system',
      action: 'account-disabled',
      resource_type: 'user',
      resource_id: dana,
      outcome: 'success',
      reason: 'dormant',
      detail: { dormantDays: 90, lastUsedAt: t0.toISOString(), sessionsEnded: 1 },
    });
    expect(audit[1]).toMatchObject({ resource_id: eve, reason: 'dormant', detail: { sessionsEnded: 0 } });

    // A second run (another server, the next hour) finds nothing more to do.
    expect(await s.reviews.disableDormant(sys, clock.now())).toEqual([]);
    expect(await entries('account-disabled')).toHaveLength(2);

    // Enabled again (enrolling: the test account has no password), the account counts as unused
    // from then on, not from its last login.
    await s.accounts.enable(sys, dana);
    clock.advance(DAY);
    expect(await s.reviews.disableDormant(sys, clock.now())).toEqual([]);
    const listed = await s.reviews.list(sys, clock.now());
    expect(listed.users.find((u) => u.id === dana)).toMatchObject({ status: 'enrolling', dormant: false });

    // The period is the practice's: 30 days disables frank (last login 89 days ago), not dana (enabled a day ago).
    await s.settings.setAccessSettings(custos.practiceId, { dormantDays: 30 });
    expect((await s.reviews.disableDormant(sys, clock.now())).map((u) => u.username)).toEqual(['frank']);
    clock.advance(29 * DAY);
    expect((await s.reviews.disableDormant(sys, clock.now())).map((u) => u.username)).toEqual(['dana']);
  });

  it('records certifications and revocations with an audit entry each; revoking disables the account', async () => {
    const officer = await account('olga', ['privacy_officer'], { lastLoginAt: clock.now() });
    const alice = await account('alice', ['clinician'], { lastLoginAt: clock.now() });
    const bob = await account('bob', ['billing'], { lastLoginAt: clock.now() });
    const session = await s.sessions.create({
      userId: bob,
      practiceId: custos.practiceId,
      kind: 'full',
      clientAddress: '127.0.0.1',
      userAgentHash: null,
    });
    const ctx = as(officer, 'privacy_officer');

    const certifiedAt = clock.now();
    const certified = await s.reviews.certify(ctx, alice, '  reviewed with the practice lead ');
    expect(certified).toEqual({
      id: expect.any(String),
      userId: alice,
      decision: 'certified',
      reviewerId: officer,
      reviewedAt: certifiedAt,
      comment: 'reviewed with the practice lead',
    });
    clock.advance(1000);
    const revokedAt = clock.now();
    const revoked = await s.reviews.revoke(ctx, bob);
    expect(revoked).toMatchObject({ userId: bob, decision: 'revoked', reviewerId: officer, comment: null });

    expect(await db().selectFrom('access_reviews').selectAll().orderBy('reviewed_at').execute()).toEqual([
      {
        id: certified.id,
        practice_id: custos.practiceId,
        user_id: alice,
        reviewer_id: officer,
        decision: 'certified',
        comment: 'reviewed with the practice lead',
        reviewed_at: certifiedAt,
      },
      {
        id: revoked.id,
        practice_id: custos.practiceId,
        user_id: bob,
        reviewer_id: officer,
        decision: 'revoked',
        comment: null,
        reviewed_at: revokedAt,
      },
    ]);
    expect(await entries('access-certified')).toEqual([
      expect.objectContaining({
        actor_kind: 'user',
        actor_id: officer,
        resource_type: 'user',
        resource_id: alice,
        outcome: 'success',
        session_id: 'sess-test',
        detail: { review: certified.id, roles: 'clinician' },
      }),
    ]);
    expect(await entries('access-revoked')).toEqual([
      expect.objectContaining({
        actor_id: officer,
        resource_id: bob,
        outcome: 'success',
        detail: { review: revoked.id, roles: 'billing' },
      }),
    ]);
    // Disabled the way an administrator disables: sessions ended, `user-disabled` audited.
    expect(await status(bob)).toBe('disabled');
    expect(await entries('user-disabled')).toEqual([
      expect.objectContaining({ actor_id: officer, resource_id: bob, outcome: 'success' }),
    ]);
    expect((await s.sessions.check(session.token)).ok).toBe(false);
    // The comment stays in its row: no audit entry quotes it.
    const trail = JSON.stringify(await db().selectFrom('audit_entries').selectAll().execute());
    expect(trail).not.toContain('practice lead');

    // The operator's CLI: the system actor on behalf of the officer.
    clock.advance(1000);
    const viaCli = await s.reviews.certify(
      systemContext({
        practiceId: custos.practiceId,
        purpose: 'operations',
        requestId: randomUUID(),
        onBehalfOf: officer,
      }),
      alice,
    );
    expect(viaCli.reviewerId).toBe(officer);
    expect((await entries('access-certified')).at(-1)).toMatchObject({
      actor_kind: 'system',
      on_behalf_of: officer,
      resource_id: alice,
    });

    // Bad comments and a disabled account are refused before anything is recorded.
    const long = await rejection(s.reviews.certify(ctx, alice, 'x'.repeat(201)));
    expect(long).toMatchObject({ code: 'CUSTOS_ERR_VALIDATION', field: 'comment' });
    expect(await rejection(s.reviews.certify(ctx, alice, 'a\nb'))).toMatchObject({ field: 'comment' });
    expect(await rejection(s.reviews.certify(ctx, bob))).toMatchObject({
      code: 'CUSTOS_ERR_VALIDATION',
      field: 'userId',
    });
    expect(await db().selectFrom('access_reviews').select('id').execute()).toHaveLength(3);
  });

  it('reports a review overdue once it is older than the review interval, not at the boundary', async () => {
    const officer = await account('olga', ['privacy_officer'], { lastLoginAt: clock.now() });
    const alice = await account('alice', ['clinician'], { lastLoginAt: clock.now() });
    const bob = await account('bob', ['nurse'], { lastLoginAt: clock.now() });
    const ctx = as(officer, 'privacy_officer');
    const overdue = async () => {
      const { users } = await s.reviews.list(ctx, clock.now());
      return Object.fromEntries(users.map((u) => [u.username, u.overdue]));
    };
    expect(await overdue()).toEqual({ alice: true, bob: true, olga: true });
    await s.reviews.certify(ctx, alice);
    expect(await overdue()).toEqual({ alice: false, bob: true, olga: true });

    clock.advance(90 * DAY); // exactly the interval
    expect((await overdue()).alice).toBe(false);
    clock.advance(1);
    expect((await overdue()).alice).toBe(true);

    // The interval is the practice's.
    await s.reviews.certify(ctx, alice);
    await s.settings.setAccessSettings(custos.practiceId, { reviewIntervalDays: 30 });
    clock.advance(30 * DAY + 1);
    expect((await overdue()).alice).toBe(true);

    // Revoked, then enabled again by an administrator: overdue until reviewed again.
    await s.reviews.revoke(ctx, bob);
    expect((await overdue()).bob).toBe(false); // disabled accounts are never overdue
    await s.accounts.enable(sys, bob);
    expect((await overdue()).bob).toBe(true);
  });

  it('refuses a privacy officer reviewing their own access, and audits the attempt', async () => {
    const officer = await account('olga', ['privacy_officer'], { lastLoginAt: clock.now() });
    const self = await rejection(s.reviews.certify(as(officer, 'privacy_officer'), officer));
    expect(self).toMatchObject({ code: 'CUSTOS_ERR_VALIDATION', field: 'userId' });
    const viaCli = await rejection(
      s.reviews.revoke(
        systemContext({
          practiceId: custos.practiceId,
          purpose: 'operations',
          requestId: randomUUID(),
          onBehalfOf: officer,
        }),
        officer,
      ),
    );
    expect(viaCli).toMatchObject({ code: 'CUSTOS_ERR_VALIDATION', field: 'userId' });
    expect(await status(officer)).toBe('active');
    expect(await db().selectFrom('access_reviews').select('id').execute()).toEqual([]);
    expect(await entries('access-certified')).toEqual([
      expect.objectContaining({
        actor_id: officer,
        resource_id: officer,
        outcome: 'denied',
        reason: 'self-review',
      }),
    ]);
    expect(await entries('access-revoked')).toEqual([
      expect.objectContaining({
        actor_kind: 'system',
        on_behalf_of: officer,
        resource_id: officer,
        outcome: 'denied',
        reason: 'self-review',
      }),
    ]);
  });

  it('denies everyone but the privacy officer with a not-found error, and audits the denial', async () => {
    const alice = await account('alice', ['clinician', 'admin'], { lastLoginAt: clock.now() });
    const bob = await account('bob', ['nurse'], { lastLoginAt: clock.now() });
    const former = await account('olga', ['privacy_officer'], { status: 'disabled' });
    const denied = [
      as(alice, 'clinician,admin'),
      // The role claimed in the context does not count; the account's roles do.
      as(alice, 'privacy_officer'),
      as(former, 'privacy_officer'),
      systemContext({
        practiceId: custos.practiceId,
        purpose: 'operations',
        requestId: randomUUID(),
        onBehalfOf: alice,
      }),
      accessContext({
        actor: { kind: 'patient', id: randomUUID() },
        role: 'patient',
        practiceId: custos.practiceId,
        purpose: 'patient-request',
        requestId: randomUUID(),
      }),
    ];
    for (const ctx of denied) {
      for (const attempt of [
        () => s.reviews.list(ctx, clock.now()),
        () => s.reviews.certify(ctx, bob),
        () => s.reviews.revoke(ctx, bob),
        () => s.reviews.disableDormant(ctx, clock.now()),
      ]) {
        const e = await rejection(attempt());
        expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
      }
    }
    expect(await status(bob)).toBe('active');
    expect(await db().selectFrom('access_reviews').select('id').execute()).toEqual([]);
    const audit = await db()
      .selectFrom('audit_entries')
      .select(['actor_kind', 'action', 'resource_type', 'resource_id', 'outcome', 'reason'])
      .where('outcome', '=', 'denied')
      .orderBy('seq')
      .execute();
    expect(audit).toHaveLength(denied.length * 4);
    expect(audit.slice(0, 4)).toEqual([
      {
        actor_kind: 'user',
        action: 'access-review-listed',
        resource_type: 'practice',
        resource_id: custos.practiceId,
        outcome: 'denied',
        reason: 'not-privacy-officer',
      },
      {
        actor_kind: 'user',
        action: 'access-certified',
        resource_type: 'user',
        resource_id: bob,
        outcome: 'denied',
        reason: 'not-privacy-officer',
      },
      {
        actor_kind: 'user',
        action: 'access-revoked',
        resource_type: 'user',
        resource_id: bob,
        outcome: 'denied',
        reason: 'not-privacy-officer',
      },
      {
        actor_kind: 'user',
        action: 'account-disabled',
        resource_type: 'practice',
        resource_id: custos.practiceId,
        outcome: 'denied',
        reason: 'not-privacy-officer',
      },
    ]);
    expect(audit.at(-1)).toMatchObject({ actor_kind: 'patient', reason: 'actor-kind' });
  });

  it('answers an unknown user and a user of another practice with the same not-found error', async () => {
    const officer = await account('olga', ['privacy_officer'], { lastLoginAt: clock.now() });
    const other = randomUUID();
    const stranger = randomUUID();
    const owner = custos.database.owner;
    await owner
      .insertInto('practices')
      .values({ id: other, name: 'Other practice', created_at: clock.now() })
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
        last_login_at: clock.now(),
        created_at: clock.now(),
      })
      .execute();
    const ctx = as(officer, 'privacy_officer');
    const messages = [];
    for (const id of [randomUUID(), stranger, 'not-a-uuid']) {
      const e = await rejection(s.reviews.revoke(ctx, id));
      expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
      messages.push((e as Error).message);
    }
    expect(new Set(messages).size).toBe(1);
    expect(
      (await owner.selectFrom('users').select('status').where('id', '=', stranger).executeTakeFirstOrThrow())
        .status,
    ).toBe('active');
    expect((await s.reviews.list(ctx, clock.now())).users.map((u) => u.username)).toEqual(['olga']);
    expect((await entries('access-revoked')).map((e) => e.reason)).toEqual([
      'not-found',
      'not-found',
      'not-found',
    ]);
  });
});
