import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import { notFound, validationError } from '../errors.ts';
import type { Accounts } from '../identity/accounts.ts';
import { securityEvent } from '../identity/events.ts';
import type { PracticeSettings } from '../identity/practice-settings.ts';
import { isUuid } from '../ids.ts';
import type { AccessContext } from './context.ts';
import { isActivePrivacyOfficer } from './officers.ts';
import { DAY_MS, loadAccessFacts, loadAccounts } from './reviews.store.ts';

/**
 * Access reviews (HIPAA 45 CFR 164.308(a)(4)(ii)(C), access establishment and modification;
 * 164.308(a)(1)(ii)(D), information system activity review): who holds which access, who has
 * not used it, and the privacy officer's periodic decision on each account.
 *
 * Only the privacy officer (or the `system` actor, for `custos review` and the hourly dormant
 * sweep of `custos serve`) may list, certify or revoke. The service checks this itself rather
 * than trusting the route: a denial looks like "not found" and is audited with the real reason.
 */
export type ReviewDecision = 'certified' | 'revoked';

export interface LastReview {
  readonly decision: ReviewDecision;
  readonly reviewerId: string;
  /** The reviewer's username, or null for the `system` actor or an account of another practice. */
  readonly reviewer: string | null;
  readonly at: Date;
  readonly comment: string | null;
}

export interface ReviewedUser {
  readonly id: string;
  readonly username: string;
  readonly roles: readonly string[];
  /** enrolling | active | disabled */
  readonly status: string;
  readonly createdAt: Date;
  readonly lastLoginAt: Date | null;
  /** Patients whose care team the user is on now. */
  readonly careTeamSize: number;
  /** Break-the-glass grants in force now. */
  readonly activeBreakGlassGrants: number;
  /** Not disabled, and unused (no login, creation, enabling or reset) for `dormantDays`. */
  readonly dormant: boolean;
  readonly lastReview: LastReview | null;
  /** Not disabled, and never reviewed, last revoked, or last reviewed over `reviewIntervalDays` ago. */
  readonly overdue: boolean;
}

export interface AccessReviewList {
  readonly asOf: Date;
  readonly dormantDays: number;
  readonly reviewIntervalDays: number;
  readonly users: readonly ReviewedUser[];
}

export interface Review {
  readonly id: string;
  readonly userId: string;
  readonly decision: ReviewDecision;
  readonly reviewerId: string;
  readonly reviewedAt: Date;
  readonly comment: string | null;
}

export interface AccessReviewsOptions {
  readonly db: Kysely<CoreDb>;
  readonly accounts: Accounts;
  readonly settings: PracticeSettings;
  readonly clock: () => Date;
}

const MAX_COMMENT = 200;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export class AccessReviews {
  readonly #o: AccessReviewsOptions;

  constructor(options: AccessReviewsOptions) {
    this.#o = options;
  }

  /**
   * Every account of the practice with what a reviewer needs to judge it. The listing is itself
   * audited (`access-review-listed`).
   *
   * @example
   * const { users } = await reviews.list(ctx, new Date());
   * const due = users.filter((u) => u.overdue);
   */
  async list(ctx: AccessContext, now: Date): Promise<AccessReviewList> {
    await this.#authorize(ctx, 'access-review-listed', null, now);
    const list = await this.#snapshot(ctx.practiceId, now);
    await securityEvent(
      this.#o.db,
      ctx,
      {
        action: 'access-review-listed',
        resourceType: 'practice',
        resourceId: ctx.practiceId,
        outcome: 'success',
        detail: {
          users: list.users.length,
          overdue: list.users.filter((u) => u.overdue).length,
          dormant: list.users.filter((u) => u.dormant).length,
        },
      },
      now,
    );
    return list;
  }

  /**
   * Disables every dormant account (no login, or none since it was created, enabled again or
   * reset, for the practice's `dormantDays`) and ends its sessions; one `account-disabled`
   * entry with reason `dormant` each. Safe to run on several servers at once: an account is
   * disabled only if it is still in the state it was read in, so it is disabled and audited once.
   */
  async disableDormant(
    ctx: AccessContext,
    now: Date,
  ): Promise<{ id: string; username: string; lastLoginAt: Date | null }[]> {
    await this.#authorize(ctx, 'account-disabled', null, now);
    const { dormantDays } = await this.#o.settings.accessSettings(ctx.practiceId);
    const disabled: { id: string; username: string; lastLoginAt: Date | null }[] = [];
    for (const u of await loadAccounts(this.#o.db, { practiceId: ctx.practiceId, now, dormantDays })) {
      if (!u.dormant) {
        continue;
      }
      const done = await this.#o.db.transaction().execute(async (tx) => {
        const r = await tx
          .updateTable('users')
          .set({ status: 'disabled' })
          .where('id', '=', u.id)
          .where('status', '=', u.status)
          .where(sql<boolean>`last_login_at IS NOT DISTINCT FROM ${u.lastLoginAt}`)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) {
          return false; // used, changed or disabled meanwhile: not dormant any more, or done by another server
        }
        // The same as Sessions.endAll, inside this transaction so that disabling is all or nothing.
        const ended = await tx
          .updateTable('sessions')
          .set({ ended_at: now, end_reason: 'account-disabled' })
          .where('user_id', '=', u.id)
          .where('ended_at', 'is', null)
          .executeTakeFirst();
        await securityEvent(
          tx,
          ctx,
          {
            action: 'account-disabled',
            resourceType: 'user',
            resourceId: u.id,
            outcome: 'success',
            reason: 'dormant',
            detail: {
              dormantDays,
              lastUsedAt: u.lastUsedAt.toISOString(),
              sessionsEnded: Number(ended.numUpdatedRows),
            },
          },
          now,
        );
        return true;
      });
      if (done) {
        disabled.push({ id: u.id, username: u.username, lastLoginAt: u.lastLoginAt });
      }
    }
    return disabled;
  }

  /** Records that the user's access is appropriate as it stands (`access-certified`). */
  certify(ctx: AccessContext, userId: string, comment?: unknown): Promise<Review> {
    return this.#review(ctx, userId, 'certified', comment);
  }

  /**
   * Records that the user's access is to end: disables the account and ends its sessions
   * through `Accounts.disable` (audited `user-disabled`), then records the review (`access-revoked`).
   */
  revoke(ctx: AccessContext, userId: string, comment?: unknown): Promise<Review> {
    return this.#review(ctx, userId, 'revoked', comment);
  }

  async #review(
    ctx: AccessContext,
    userId: string,
    decision: ReviewDecision,
    commentInput: unknown,
  ): Promise<Review> {
    const { db, clock } = this.#o;
    const action = decision === 'certified' ? 'access-certified' : 'access-revoked';
    const now = clock();
    const subject = isUuid(userId) ? userId : null;
    const reviewerId = await this.#authorize(ctx, action, subject, now);
    const comment = parseComment(commentInput);
    const denied = async (reason: string) =>
      securityEvent(
        db,
        ctx,
        { action, resourceType: 'user', resourceId: subject, outcome: 'denied', reason },
        now,
      );
    const target = subject
      ? await db
          .selectFrom('users')
          .select(['id', 'roles', 'status'])
          .where('id', '=', subject)
          .where('practice_id', '=', ctx.practiceId)
          .executeTakeFirst()
      : undefined;
    if (!target) {
      await denied('not-found');
      throw notFound('user');
    }
    if (target.id === reviewerId) {
      await denied('self-review');
      throw validationError('userId', 'a privacy officer cannot review their own access');
    }
    if (decision === 'certified' && target.status === 'disabled') {
      await denied('disabled');
      throw validationError('userId', 'the account is disabled; enable it before certifying its access');
    }
    if (decision === 'revoked') {
      // Disable first: if recording the review then fails, the access has still ended (fail closed).
      await this.#o.accounts.disable(ctx, target.id);
    }
    const review: Review = {
      id: randomUUID(),
      userId: target.id,
      decision,
      reviewerId,
      reviewedAt: now,
      comment,
    };
    await db.transaction().execute(async (tx) => {
      await tx
        .insertInto('access_reviews')
        .values({
          id: review.id,
          practice_id: ctx.practiceId,
          user_id: review.userId,
          reviewer_id: reviewerId,
          decision,
          comment,
          reviewed_at: now,
        })
        .execute();
      // The comment is the officer's free text: it stays in its row, never in the trail.
      await securityEvent(
        tx,
        ctx,
        {
          action,
          resourceType: 'user',
          resourceId: target.id,
          outcome: 'success',
          detail: { review: review.id, roles: target.roles.join(',') },
        },
        now,
      );
    });
    return review;
  }

  /**
   * Who may review: an active privacy officer of the practice, or the `system` actor (if it acts
   * on someone's behalf, that someone must be an active privacy officer). Returns the reviewer's
   * id; otherwise audits the denial and throws a not-found error.
   */
  async #authorize(ctx: AccessContext, action: string, userId: string | null, now: Date): Promise<string> {
    const deny = async (reason: string): Promise<never> => {
      await securityEvent(
        this.#o.db,
        ctx,
        {
          action,
          resourceType: userId ? 'user' : 'practice',
          resourceId: userId ?? ctx.practiceId,
          outcome: 'denied',
          reason,
        },
        now,
      );
      throw notFound(userId ? 'user' : 'access review');
    };
    switch (ctx.actor.kind) {
      case 'system':
        if (ctx.onBehalfOf === undefined) {
          return ctx.actor.id;
        }
        return (await this.#isPrivacyOfficer(ctx.practiceId, ctx.onBehalfOf))
          ? ctx.onBehalfOf
          : deny('not-privacy-officer');
      case 'user':
        return (await this.#isPrivacyOfficer(ctx.practiceId, ctx.actor.id))
          ? ctx.actor.id
          : deny('not-privacy-officer');
      default:
        return deny('actor-kind');
    }
  }

  #isPrivacyOfficer(practiceId: string, id: string): Promise<boolean> {
    return isActivePrivacyOfficer(this.#o.db, practiceId, id);
  }

  async #snapshot(practiceId: string, now: Date): Promise<AccessReviewList> {
    const { dormantDays, reviewIntervalDays } = await this.#o.settings.accessSettings(practiceId);
    const accounts = await loadAccounts(this.#o.db, { practiceId, now, dormantDays });
    const { teamSize, grantCount, lastReview } = await loadAccessFacts(this.#o.db, { practiceId, now });
    const names = new Map(accounts.map((a) => [a.id, a.username]));
    const intervalMs = reviewIntervalDays * DAY_MS;
    return {
      asOf: now,
      dormantDays,
      reviewIntervalDays,
      users: accounts.map((a): ReviewedUser => {
        const r = lastReview.get(a.id);
        const last: LastReview | null = r
          ? {
              decision: r.decision as ReviewDecision,
              reviewerId: r.reviewer_id,
              reviewer: names.get(r.reviewer_id) ?? null,
              at: r.reviewed_at,
              comment: r.comment,
            }
          : null;
        return {
          id: a.id,
          username: a.username,
          roles: a.roles,
          status: a.status,
          createdAt: a.createdAt,
          lastLoginAt: a.lastLoginAt,
          careTeamSize: teamSize.get(a.id) ?? 0,
          activeBreakGlassGrants: grantCount.get(a.id) ?? 0,
          dormant: a.dormant,
          lastReview: last,
          overdue:
            a.status !== 'disabled' &&
            (last === null || last.decision === 'revoked' || now.getTime() - last.at.getTime() > intervalMs),
        };
      }),
    };
  }
}

/** An optional short comment: no control characters, at most 200 characters; blank is none. */
function parseComment(input: unknown): string | null {
  if (input === undefined || input === null) {
    return null;
  }
  if (typeof input !== 'string') {
    throw validationError('comment', 'must be a string');
  }
  const text = input.trim();
  if (CONTROL.test(text)) {
    throw validationError('comment', 'must not contain control characters');
  }
  if (text.length > MAX_COMMENT) {
    throw validationError('comment', `must be at most ${MAX_COMMENT} characters`);
  }
  return text === '' ? null : text;
}

/**
 * Runs `disableDormant` now and then every `intervalMs` (an hour) for `custos serve`; `stop()`
 * waits for a round in flight. A failed round is reported by its error class only (a driver's
 * message may quote row values) and runs again next time.
 */
export function startDormantSweep(options: {
  readonly reviews: AccessReviews;
  readonly context: () => AccessContext;
  readonly clock: () => Date;
  readonly log: (line: string) => void;
  readonly intervalMs?: number;
}): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const round = async () => {
    try {
      const disabled = await options.reviews.disableDormant(options.context(), options.clock());
      if (disabled.length > 0) {
        options.log(`custos: disabled ${disabled.length} dormant account(s) (audited as account-disabled)`);
      }
    } catch (e) {
      options.log(`custos: dormant-account check failed (${(e as Error).name}); it runs again in an hour`);
    }
  };
  const tick = () => {
    running = running.then(round);
  };
  tick();
  const timer = setInterval(tick, options.intervalMs ?? 3_600_000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
