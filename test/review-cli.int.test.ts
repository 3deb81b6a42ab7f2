import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../src/access/context.ts';
import { openCustos } from '../src/app/custos.ts';
import { type Config, loadConfig } from '../src/config/config.ts';
import { buildServices } from '../src/http/services.ts';
import { PasswordHasher } from '../src/identity/password.ts';
import { runCli } from './support/cli.ts';
import { type CliData, cliData } from './support/cli-data.ts';
import { skipReason } from './support/db.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] review-cli.int.test.ts skipped: ${skip}`);
}

const oneLine = /^custos: [^\n]+\n$/;

/** `custos review`, `review certify` and `review revoke` through the real command. */
describe.skipIf(skip)('custos review', () => {
  let d: CliData;
  let config: Config;
  const ids: Record<string, string> = {};

  /** Opens the data folder (never while a command runs: the embedded database has one user). */
  async function withDb<T>(fn: (c: Awaited<ReturnType<typeof openCustos>>) => Promise<T>): Promise<T> {
    const c = await openCustos(config);
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }

  beforeAll(async () => {
    d = await cliData();
    config = loadConfig(d.env, d.dataDir);
    await withDb(async (c) => {
      const s = buildServices(c, {
        hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
      });
      const sys = systemContext({ practiceId: c.practiceId, purpose: 'operations', requestId: randomUUID() });
      const accounts: [string, string[], Date][] = [
        ['olga', ['privacy_officer'], new Date()],
        ['alice', ['clinician'], new Date()],
        ['bert', ['nurse'], new Date()],
        // Last seen years ago: `custos review` disables it first.
        ['dora', ['clinician'], new Date('2020-01-02T03:04:05Z')],
      ];
      for (const [username, roles, lastLogin] of accounts) {
        const { userId } = await s.accounts.add(sys, { username, roles });
        ids[username] = userId;
        await c.database.db
          .updateTable('users')
          .set({ status: 'active', last_login_at: lastLogin, created_at: lastLogin })
          .where('id', '=', userId)
          .execute();
      }
    });
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
  });

  it('disables dormant accounts first and says so, then prints JSON lines with --json', async () => {
    const r = await runCli(['review', '--json'], d.env);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('custos: disabled dormant account dora (last login 2020-01-02)\n');
    const users = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(users.map((u) => [u.username, u.status, u.dormant, u.overdue])).toEqual([
      ['alice', 'active', false, true],
      ['bert', 'active', false, true],
      ['dora', 'disabled', false, false],
      ['olga', 'active', false, true],
    ]);
    const audit = await withDb((c) =>
      c.database.db
        .selectFrom('audit_entries')
        .selectAll()
        .where('action', '=', 'account-disabled')
        .execute(),
    );
    expect(audit).toEqual([
      expect.objectContaining({
        actor_kind: 'system',
        resource_id: ids.dora,
        reason: 'dormant',
        outcome: 'success',
      }),
    ]);
  }, 120_000);

  it('certifies and revokes on behalf of the privacy officer, and shows the result as a table', async () => {
    const certify = await runCli(
      ['review', 'certify', 'alice', '--by', 'olga', '--comment', 'on the rota'],
      d.env,
    );
    expect(certify).toEqual({
      code: 0,
      stdout: 'custos: certified the access of alice (by olga)\n',
      stderr: '',
    });
    const revoke = await runCli(['review', 'revoke', 'Bert', '--by', 'OLGA'], d.env);
    expect(revoke.stderr).toBe('');
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toMatch(/^custos: revoked the access of bert \(by olga\); the account is disabled/);

    const table = await runCli(['review'], d.env);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^USER +ROLES +STATUS +CREATED +LAST LOGIN +CARE TEAMS +BREAK-GLASS +DORMANT +LAST REVIEW +OVERDUE$/,
    );
    const today = new Date().toISOString().slice(0, 10);
    const cells = lines.slice(1, 5).map((l) => l.split(/ {2,}/));
    expect(cells.map((c) => [c[0], c[2], c[8], c[9]])).toEqual([
      ['alice', 'active', `certified ${today} by olga`, 'no'],
      ['bert', 'disabled', `revoked ${today} by olga`, 'no'],
      ['dora', 'disabled', '-', 'no'],
      ['olga', 'active', '-', 'yes'],
    ]);
    expect(lines[5]).toBe(
      '4 accounts; 1 overdue for review (every 90 days); dormant after 90 days without a login',
    );
    expect(lines[6]).toBe(
      "0 break-glass grants awaiting the privacy officer's review; 0 overdue (review within 7 days; GET /api/v1/break-glass/reviews)",
    );

    const rows = await withDb((c) =>
      c.database.db.selectFrom('access_reviews').selectAll().orderBy('reviewed_at').execute(),
    );
    expect(rows.map((r) => [r.user_id, r.decision, r.reviewer_id, r.comment])).toEqual([
      [ids.alice, 'certified', ids.olga, 'on the rota'],
      [ids.bert, 'revoked', ids.olga, null],
    ]);
    const audit = await withDb((c) =>
      c.database.db
        .selectFrom('audit_entries')
        .selectAll()
        .where('action', 'in', ['access-certified', 'access-revoked'])
        .orderBy('seq')
        .execute(),
    );
    expect(audit.map((e) => [e.action, e.actor_kind, e.on_behalf_of, e.resource_id])).toEqual([
      ['access-certified', 'system', ids.olga, ids.alice],
      ['access-revoked', 'system', ids.olga, ids.bert],
    ]);
  }, 240_000);

  it('exits 2 with one line on stderr for usage errors, and changes nothing', async () => {
    const cases: string[][] = [
      ['review', 'bogus'],
      ['review', '--bogus'],
      ['review', 'certify'],
      ['review', 'certify', 'alice'],
      ['review', 'certify', 'alice', '--by', 'alice'], // not a privacy officer
      ['review', 'revoke', 'nobody', '--by', 'olga'],
      ['review', 'certify', 'olga', '--by', 'olga'], // their own access
    ];
    for (const args of cases) {
      const r = await runCli(args, d.env);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(r.stderr, args.join(' ')).toMatch(oneLine);
    }
    const rows = await withDb((c) => c.database.db.selectFrom('access_reviews').select('id').execute());
    expect(rows).toHaveLength(2);
    const alice = await withDb((c) =>
      c.database.db
        .selectFrom('users')
        .select('status')
        .where('id', '=', ids.alice ?? '')
        .executeTakeFirstOrThrow(),
    );
    expect(alice.status).toBe('active');
  }, 240_000);
});
