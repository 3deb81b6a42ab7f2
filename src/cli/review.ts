import { randomUUID } from 'node:crypto';
import { systemContext } from '../access/context.ts';
import type { ReviewedUser } from '../access/reviews.ts';
import { renderJsonLines, renderTable } from '../audit/report-view.ts';
import type { Config } from '../config/config.ts';
import { buildServices } from '../http/services.ts';
import { normalizeUsername } from '../identity/usernames.ts';
import { EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';
import { withCustos } from './session.ts';

const USAGE =
  'review needs no argument (or --json), or: certify NAME --by OFFICER [--comment TEXT], revoke NAME --by OFFICER [--comment TEXT]';

const day = (d: Date | null | undefined) => (d ? d.toISOString().slice(0, 10) : null);

const COLUMNS: readonly (readonly [string, (u: ReviewedUser) => unknown])[] = [
  ['USER', (u) => u.username],
  ['ROLES', (u) => u.roles.join(',')],
  ['STATUS', (u) => u.status],
  ['CREATED', (u) => day(u.createdAt)],
  ['LAST LOGIN', (u) => day(u.lastLoginAt) ?? 'never'],
  ['CARE TEAMS', (u) => u.careTeamSize],
  ['BREAK-GLASS', (u) => u.activeBreakGlassGrants],
  ['DORMANT', (u) => (u.dormant ? 'yes' : 'no')],
  [
    'LAST REVIEW',
    (u) =>
      u.lastReview &&
      `${u.lastReview.decision} ${day(u.lastReview.at)} by ${u.lastReview.reviewer ?? u.lastReview.reviewerId}`,
  ],
  ['OVERDUE', (u) => (u.overdue ? 'yes' : 'no')],
];

/**
 * `custos review [--json]`: disables dormant accounts (and says so on stderr), then lists every
 * account for the access review: a table (dates in UTC), or one JSON object per line.
 * `custos review certify|revoke NAME --by OFFICER [--comment TEXT]`: records the privacy
 * officer's decision; the operator acts as the `system` actor on behalf of OFFICER, who must
 * hold the privacy_officer role. Everything is audited.
 */
export async function review(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'certify' || sub === 'revoke') {
    return decide(sub, rest, config, io);
  }
  if (sub !== undefined && !sub.startsWith('-')) {
    throw new UsageError(USAGE);
  }
  const { values } = parseOptions(args, { json: { type: 'boolean' } });
  return withCustos(config, io, async (c) => {
    const s = buildServices(c);
    const ctx = systemContext({ practiceId: c.practiceId, purpose: 'operations', requestId: randomUUID() });
    for (const u of await s.reviews.disableDormant(ctx, s.clock())) {
      io.stderr.write(
        `custos: disabled dormant account ${u.username} (last login ${day(u.lastLoginAt) ?? 'never'})\n`,
      );
    }
    const list = await s.reviews.list(ctx, s.clock());
    if (values.json) {
      io.stdout.write(renderJsonLines(list.users));
      return EXIT_OK;
    }
    io.stdout.write(renderTable(COLUMNS, list.users));
    const overdue = list.users.filter((u) => u.overdue).length;
    io.stdout.write(
      `${list.users.length} accounts; ${overdue} overdue for review (every ${list.reviewIntervalDays} days); dormant after ${list.dormantDays} days without a login\n`,
    );
    const queue = await s.breakGlass.queue(ctx, s.clock());
    io.stdout.write(
      `${queue.grants.length} break-glass grants awaiting the privacy officer's review; ${queue.overdue} overdue (review within ${queue.breakGlassReviewDays} days; GET /api/v1/break-glass/reviews)\n`,
    );
    return EXIT_OK;
  });
}

async function decide(sub: 'certify' | 'revoke', args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    { by: { type: 'string' }, comment: { type: 'string' } },
    1,
  );
  const [name] = positionals;
  if (!name) {
    throw new UsageError(`review ${sub} needs a NAME`);
  }
  if (!values.by) {
    throw new UsageError(`review ${sub} needs --by OFFICER (a user with the privacy_officer role)`);
  }
  const officerName = values.by;
  return withCustos(config, io, async (c) => {
    const s = buildServices(c);
    const officer = await s.accounts.findByUsername(c.practiceId, normalizeUsername(officerName));
    if (officer?.status !== 'active' || !officer.roles.includes('privacy_officer')) {
      throw new UsageError('--by must name an active account with the privacy_officer role');
    }
    const target = await s.accounts.findByUsername(c.practiceId, normalizeUsername(name));
    if (!target) {
      throw new UsageError(`review ${sub}: no account has that NAME`);
    }
    const ctx = systemContext({
      practiceId: c.practiceId,
      purpose: 'operations',
      requestId: randomUUID(),
      onBehalfOf: officer.id,
    });
    if (sub === 'certify') {
      await s.reviews.certify(ctx, target.id, values.comment);
      io.stdout.write(`custos: certified the access of ${target.username} (by ${officer.username})\n`);
    } else {
      await s.reviews.revoke(ctx, target.id, values.comment);
      io.stdout.write(
        `custos: revoked the access of ${target.username} (by ${officer.username}); the account is disabled and its sessions ended\n`,
      );
    }
    return EXIT_OK;
  });
}
