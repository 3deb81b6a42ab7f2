import { type Kysely, sql } from 'kysely';
import type { CoreDb } from '../db/schema.ts';

/** The queries behind access reviews; `reviews.ts` decides, authorizes and audits. */
export const DAY_MS = 86_400_000;

/** Account events after which an account counts as unused only from then on. */
const REACTIVATIONS = ['user-enabled', 'user-reset'] as const;

export interface AccountUse {
  readonly id: string;
  readonly username: string;
  readonly roles: string[];
  readonly status: string;
  readonly createdAt: Date;
  readonly lastLoginAt: Date | null;
  /** The latest of creation, last login, and the last time an administrator enabled or reset it. */
  readonly lastUsedAt: Date;
  /** Not disabled, and `lastUsedAt` at least `dormantDays` ago. */
  readonly dormant: boolean;
}

/**
 * The practice's accounts, by username, with when each was last used. Enabling and resetting are
 * read from the audit trail (a partial index, migration 007, keeps that cheap), so an account an
 * administrator has just enabled again is not disabled by the next dormant sweep.
 */
export async function loadAccounts(
  db: Kysely<CoreDb>,
  q: { practiceId: string; now: Date; dormantDays: number },
): Promise<AccountUse[]> {
  const users = await db
    .selectFrom('users')
    .select(['id', 'username', 'roles', 'status', 'created_at', 'last_login_at'])
    .where('practice_id', '=', q.practiceId)
    .orderBy('username')
    .execute();
  const reactivated = await db
    .selectFrom('audit_entries')
    .select((eb) => ['resource_id', eb.fn.max('at').as('at')])
    .where('practice_id', '=', q.practiceId)
    .where('resource_type', '=', 'user')
    .where('action', 'in', REACTIVATIONS)
    .where('outcome', '=', 'success')
    .groupBy('resource_id')
    .execute();
  const since = new Map(reactivated.map((r) => [r.resource_id, new Date(r.at)]));
  const cutoff = q.now.getTime() - q.dormantDays * DAY_MS;
  return users.map((u) => {
    const lastUsedAt = new Date(
      Math.max(u.created_at.getTime(), u.last_login_at?.getTime() ?? 0, since.get(u.id)?.getTime() ?? 0),
    );
    return {
      id: u.id,
      username: u.username,
      roles: u.roles,
      status: u.status,
      createdAt: u.created_at,
      lastLoginAt: u.last_login_at,
      lastUsedAt,
      dormant: u.status !== 'disabled' && lastUsedAt.getTime() <= cutoff,
    };
  });
}

/**
 * Per user id: patients whose care team the user is on now, break-the-glass grants in force now,
 * and the latest review (on an exact tie of times a revocation wins: fail closed).
 */
export async function loadAccessFacts(db: Kysely<CoreDb>, q: { practiceId: string; now: Date }) {
  const { practiceId, now } = q;
  const careTeams = await db
    .selectFrom('care_team')
    .select((eb) => ['user_id', eb.fn.count<string>('patient_id').distinct().as('n')])
    .where('practice_id', '=', practiceId)
    .where('starts_at', '<=', now)
    .where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', now)]))
    .groupBy('user_id')
    .execute();
  const grants = await db
    .selectFrom('break_glass_grants')
    .select((eb) => ['user_id', eb.fn.countAll<string>().as('n')])
    .where('practice_id', '=', practiceId)
    .where('starts_at', '<=', now)
    .where('expires_at', '>', now)
    .where('ended_at', 'is', null)
    .groupBy('user_id')
    .execute();
  const reviews = await db
    .selectFrom('access_reviews')
    .select(['user_id', 'decision', 'reviewer_id', 'reviewed_at', 'comment'])
    .distinctOn('user_id')
    .where('practice_id', '=', practiceId)
    .orderBy('user_id')
    .orderBy('reviewed_at', 'desc')
    .orderBy(sql`decision = 'revoked'`, 'desc')
    .execute();
  const count = (rows: { user_id: string; n: string | number | bigint }[]) =>
    new Map(rows.map((r) => [r.user_id, Number(r.n)]));
  return {
    teamSize: count(careTeams),
    grantCount: count(grants),
    lastReview: new Map(reviews.map((r) => [r.user_id, r])),
  };
}
