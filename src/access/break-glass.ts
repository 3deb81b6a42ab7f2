import { type Kysely, sql } from 'kysely';
import { z } from 'zod';
import { append } from '../audit/append.ts';
import type { AuditEvent } from '../audit/entry.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, notFound, validationError } from '../errors.ts';
import { ACCESS_DEFAULTS, type PracticeSettings } from '../identity/practice-settings.ts';
import { isUuid } from '../ids.ts';
import type { AccessContext } from './context.ts';
import { isActivePrivacyOfficer } from './officers.ts';

/**
 * The privacy officer's review of break-the-glass access (HIPAA 45 CFR 164.308(a)(1)(ii)(D),
 * information system activity review; ONC 170.315(d)(6), emergency access). Every grant a
 * clinician or nurse obtained through `Chart.requestBreakGlass` waits here until the privacy
 * officer judges it `appropriate` or `inappropriate`, once; a grant unreviewed longer than the
 * practice's `breakGlassReviewDays` (default 7) after it started is overdue.
 *
 * No health data passes through this module: grant and patient ids, usernames, reason
 * categories, times. The free-text reason (sealed by the gate) and the reviewer's comment (sealed
 * here) are opened only for the privacy officer.
 *
 * Only an active privacy officer of the practice, or the `system` actor, may list or review; the
 * grant's own user may also end it early. This module checks that itself rather than trusting
 * the route: a denial looks like "not found" (the same answer as an unknown id) and is audited
 * with its real reason.
 */
export type Disposition = 'appropriate' | 'inappropriate';
export const DISPOSITIONS = ['appropriate', 'inappropriate'] as const;

/** One grant as the privacy officer sees it. */
export interface BreakGlassGrantView {
  readonly id: string;
  readonly userId: string;
  /** The grant holder's username, or null if the account no longer exists in the practice. */
  readonly username: string | null;
  readonly patientId: string;
  readonly reasonCategory: string;
  /** The free-text reason the user gave, decrypted. */
  readonly reason: string;
  readonly startsAt: Date;
  readonly expiresAt: Date;
  /** Set when the grant was ended before it expired. */
  readonly endedAt: Date | null;
  /** In force at the time asked about: started, not expired, not ended. */
  readonly active: boolean;
  /** When the review falls due: `breakGlassReviewDays` after the grant started. */
  readonly reviewDueAt: Date;
  /** Unreviewed, and started longer than `breakGlassReviewDays` ago (exactly that long is not yet). */
  readonly overdue: boolean;
}

export interface BreakGlassQueue {
  readonly asOf: Date;
  readonly breakGlassReviewDays: number;
  /** How many of `grants` are overdue. */
  readonly overdue: number;
  /** Every grant of the practice not reviewed yet, oldest first. */
  readonly grants: readonly BreakGlassGrantView[];
}

export interface ReviewedGrant extends Omit<BreakGlassGrantView, 'overdue' | 'reviewDueAt' | 'active'> {
  readonly disposition: Disposition;
  /** The reviewer's comment, decrypted, or null. */
  readonly comment: string | null;
  readonly reviewedBy: string;
  /** The reviewer's username, or null for the `system` actor. */
  readonly reviewer: string | null;
  readonly reviewedAt: Date;
  /** Whether the review came later than `breakGlassReviewDays` after the grant started. */
  readonly late: boolean;
}

export interface GrantReview {
  readonly id: string;
  readonly disposition: Disposition;
  readonly reviewedBy: string;
  readonly reviewedAt: Date;
}

export interface BreakGlassReviewsOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  /** The practice's `breakGlassReviewDays`; absent, the default of 7 days applies. */
  readonly settings?: Pick<PracticeSettings, 'accessSettings'>;
  readonly clock: () => Date;
}

export const DAY_MS = 86_400_000;
const MAX_COMMENT = 2000;
const MAX_HISTORY = 1000;

/** Where a review comment's ciphertext is bound (AAD): its table, column and row. */
export const reviewCommentAt = (grantId: string) => ({
  table: 'break_glass_grants',
  column: 'review_comment',
  row: grantId,
  version: 0,
});

/** Where the gate sealed a grant's reason (the same binding as `breakGlassReasonAt` in src/chart). */
const reasonAt = (grantId: string) => ({
  table: 'break_glass_grants',
  column: 'reason',
  row: grantId,
  version: 0,
});

const ReviewInput = z
  .object({
    disposition: z.enum(DISPOSITIONS, 'must be appropriate or inappropriate'),
    comment: z
      .string('must be a string')
      .trim()
      .max(MAX_COMMENT, `must be at most ${MAX_COMMENT} characters`)
      .optional(),
  })
  .strict();

type GrantRow = {
  id: string;
  user_id: string;
  username: string | null;
  patient_id: string;
  reason_category: string;
  reason: Buffer;
  starts_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  disposition: string | null;
  review_comment: Buffer | null;
  reviewed_by: string | null;
  reviewer: string | null;
  reviewed_at: Date | null;
};

export class BreakGlassReviews {
  readonly #o: BreakGlassReviewsOptions;

  constructor(options: BreakGlassReviewsOptions) {
    this.#o = options;
  }

  /**
   * Every grant of the practice not reviewed yet, with the decrypted reason, oldest first. The
   * listing is audited (`break-glass-review-listed`, counts only) in the transaction that reads
   * the rows; reasons are decrypted only after it commits.
   *
   * @example
   * const { grants, overdue } = await reviews.queue(ctx, new Date());
   */
  async queue(ctx: AccessContext, now: Date): Promise<BreakGlassQueue> {
    const action = 'break-glass-review-listed';
    await this.#authorize(ctx, action, ctx.practiceId, 'practice', now);
    const days = await this.#reviewDays(ctx.practiceId);
    const rows = await this.#o.db.transaction().execute(async (tx) => {
      const found = await this.#grants(tx, ctx.practiceId).where('g.reviewed_at', 'is', null).execute();
      await this.#audit(
        tx,
        ctx,
        {
          action,
          resourceType: 'practice',
          resourceId: ctx.practiceId,
          outcome: 'success',
          detail: { pending: found.length, overdue: found.filter((r) => isOverdue(r, now, days)).length },
        },
        now,
      );
      return found;
    });
    const grants = rows.map((r) => this.#view(r, now, days));
    return {
      asOf: now,
      breakGlassReviewDays: days,
      overdue: grants.filter((g) => g.overdue).length,
      grants,
    };
  }

  /**
   * Grants reviewed at or after `since` (at most 1000, oldest review first), with the reason and
   * the reviewer's comment decrypted. Audited like the queue.
   */
  async reviewed(ctx: AccessContext, options: { since: Date }): Promise<ReviewedGrant[]> {
    const action = 'break-glass-review-listed';
    const now = this.#o.clock();
    await this.#authorize(ctx, action, ctx.practiceId, 'practice', now);
    const days = await this.#reviewDays(ctx.practiceId);
    const rows = await this.#o.db.transaction().execute(async (tx) => {
      const found = await this.#grants(tx, ctx.practiceId)
        .where('g.reviewed_at', '>=', options.since)
        .orderBy('g.reviewed_at')
        .orderBy('g.id')
        .limit(MAX_HISTORY)
        .execute();
      await this.#audit(
        tx,
        ctx,
        {
          action,
          resourceType: 'practice',
          resourceId: ctx.practiceId,
          outcome: 'success',
          detail: { reviewed: found.length, since: options.since.toISOString() },
        },
        now,
      );
      return found;
    });
    return rows.map((r) => {
      const { overdue: _o, reviewDueAt: _d, active: _a, ...base } = this.#view(r, now, days);
      const reviewedAt = r.reviewed_at as Date;
      return {
        ...base,
        disposition: r.disposition as Disposition,
        comment: r.review_comment
          ? this.#o.keyring.openSecret(reviewCommentAt(r.id), r.review_comment).toString('utf8')
          : null,
        reviewedBy: r.reviewed_by ?? '',
        reviewer: r.reviewer,
        reviewedAt,
        late: reviewedAt.getTime() - r.starts_at.getTime() > days * DAY_MS,
      };
    });
  }

  /** How many grants of the practice are overdue for review (for reports; not audited when allowed). */
  async overdue(ctx: AccessContext, now: Date): Promise<number> {
    await this.#authorize(ctx, 'break-glass-review-listed', ctx.practiceId, 'practice', now);
    const days = await this.#reviewDays(ctx.practiceId);
    const row = await this.#o.db
      .selectFrom('break_glass_grants')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('practice_id', '=', ctx.practiceId)
      .where('reviewed_at', 'is', null)
      .where('starts_at', '<', new Date(now.getTime() - days * DAY_MS))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /**
   * Records the privacy officer's judgement of one grant, once: a second review is refused with
   * a conflict. The comment (required for `inappropriate`) is sealed under the key-encryption
   * key; the audit entry (`break-glass-review`) carries the disposition, never the comment.
   * Nobody reviews their own emergency access.
   */
  async review(ctx: AccessContext, grantId: string, input: unknown): Promise<GrantReview> {
    const action = 'break-glass-review';
    const { db, keyring, clock } = this.#o;
    const now = clock();
    const id = idOf(grantId);
    const reviewerId = await this.#authorize(ctx, action, id, 'break-glass', now);
    const r = ReviewInput.safeParse(input);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw validationError(
        (issue?.path ?? []).map(String).join('.') || 'review',
        issue?.message ?? 'is invalid',
      );
    }
    const comment = r.data.comment === undefined || r.data.comment === '' ? null : r.data.comment;
    const { disposition } = r.data;
    if (disposition === 'inappropriate' && comment === null) {
      throw validationError('comment', 'must say why the access was inappropriate');
    }
    const denied = (reason: string) =>
      this.#audit(
        db,
        ctx,
        { action, resourceType: 'break-glass', resourceId: id, outcome: 'denied', reason },
        now,
      );
    const grant = await this.#grant(ctx.practiceId, id);
    if (!grant) {
      await denied('not-found');
      throw notFound('break-glass grant');
    }
    if (grant.user_id === reviewerId) {
      await denied('self-review');
      throw validationError('id', 'nobody reviews their own emergency access');
    }
    if (grant.reviewed_at !== null) {
      await denied('already-reviewed');
      throw alreadyReviewed();
    }
    const sealed =
      comment === null ? null : keyring.sealSecret(reviewCommentAt(grant.id), Buffer.from(comment, 'utf8'));
    const late =
      now.getTime() - grant.starts_at.getTime() > (await this.#reviewDays(ctx.practiceId)) * DAY_MS;
    const done = await db.transaction().execute(async (tx) => {
      // Only if nobody reviewed it meanwhile: the review is recorded, and audited, exactly once.
      const u = await tx
        .updateTable('break_glass_grants')
        .set({ disposition, review_comment: sealed, reviewed_by: reviewerId, reviewed_at: now })
        .where('id', '=', grant.id)
        .where('practice_id', '=', ctx.practiceId)
        .where('reviewed_at', 'is', null)
        .executeTakeFirst();
      if (Number(u.numUpdatedRows) === 0) {
        return false;
      }
      await this.#audit(
        tx,
        ctx,
        {
          action,
          resourceType: 'break-glass',
          resourceId: grant.id,
          outcome: 'success',
          detail: { disposition, userId: grant.user_id, late },
        },
        now,
      );
      return true;
    });
    if (!done) {
      await denied('already-reviewed');
      throw alreadyReviewed();
    }
    return { id: grant.id, disposition, reviewedBy: reviewerId, reviewedAt: now };
  }

  /**
   * Ends a grant before it expires: its own user (done with the emergency) or the privacy officer.
   * Audited (`break-glass-end`); ending a grant that has already ended or expired is a conflict.
   */
  async end(ctx: AccessContext, grantId: string): Promise<{ id: string; endedAt: Date }> {
    const action = 'break-glass-end';
    const { db, clock } = this.#o;
    const now = clock();
    const id = idOf(grantId);
    const denied = (reason: string) =>
      append(
        db,
        ctx,
        { action, resourceType: 'break-glass', resourceId: id, outcome: 'denied', reason },
        now,
      );
    const grant = await this.#grant(ctx.practiceId, id);
    const holder = grant !== undefined && ctx.actor.kind === 'user' && ctx.actor.id === grant.user_id;
    const officer = holder ? false : await this.#mayReview(ctx);
    if (!grant || !(holder || officer)) {
      // An unknown grant and someone else's look the same; the entry keeps the difference.
      await denied(grant ? 'not-grant-holder' : 'not-found');
      throw notFound('break-glass grant');
    }
    if (grant.ended_at !== null || grant.expires_at.getTime() <= now.getTime()) {
      await denied('already-ended');
      throw alreadyEnded();
    }
    const done = await db.transaction().execute(async (tx) => {
      const u = await tx
        .updateTable('break_glass_grants')
        .set({ ended_at: now })
        .where('id', '=', grant.id)
        .where('practice_id', '=', ctx.practiceId)
        .where('ended_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (Number(u.numUpdatedRows) === 0) {
        return false;
      }
      await (holder ? append : this.#audit.bind(this))(
        tx,
        ctx,
        {
          action,
          resourceType: 'break-glass',
          resourceId: grant.id,
          outcome: 'success',
          detail: {
            by: holder ? 'holder' : ctx.actor.kind === 'system' ? 'system' : 'privacy-officer',
            userId: grant.user_id,
          },
        },
        now,
      );
      return true;
    });
    if (!done) {
      await denied('already-ended');
      throw alreadyEnded();
    }
    return { id: grant.id, endedAt: now };
  }

  #grants(db: Kysely<CoreDb>, practiceId: string) {
    return db
      .selectFrom('break_glass_grants as g')
      .leftJoin('users as u', (j) =>
        j.on(sql<boolean>`u.id::text = g.user_id`).on('u.practice_id', '=', practiceId),
      )
      .leftJoin('users as r', (j) =>
        j.on(sql<boolean>`r.id::text = g.reviewed_by`).on('r.practice_id', '=', practiceId),
      )
      .select([
        'g.id',
        'g.user_id',
        'u.username',
        'g.patient_id',
        'g.reason_category',
        'g.reason',
        'g.starts_at',
        'g.expires_at',
        'g.ended_at',
        'g.disposition',
        'g.review_comment',
        'g.reviewed_by',
        'r.username as reviewer',
        'g.reviewed_at',
      ])
      .where('g.practice_id', '=', practiceId)
      .orderBy('g.starts_at')
      .orderBy('g.id');
  }

  async #grant(practiceId: string, id: string): Promise<GrantRow | undefined> {
    if (!isUuid(id)) {
      return undefined;
    }
    return (await this.#grants(this.#o.db, practiceId).where('g.id', '=', id).executeTakeFirst()) as
      | GrantRow
      | undefined;
  }

  #view(r: GrantRow, now: Date, days: number): BreakGlassGrantView {
    const t = now.getTime();
    return {
      id: r.id,
      userId: r.user_id,
      username: r.username,
      patientId: r.patient_id,
      reasonCategory: r.reason_category,
      reason: this.#o.keyring.openSecret(reasonAt(r.id), r.reason).toString('utf8'),
      startsAt: r.starts_at,
      expiresAt: r.expires_at,
      endedAt: r.ended_at,
      active: r.starts_at.getTime() <= t && r.expires_at.getTime() > t && r.ended_at === null,
      reviewDueAt: new Date(r.starts_at.getTime() + days * DAY_MS),
      overdue: isOverdue(r, now, days),
    };
  }

  async #reviewDays(practiceId: string): Promise<number> {
    const settings = this.#o.settings;
    return settings
      ? (await settings.accessSettings(practiceId)).breakGlassReviewDays
      : ACCESS_DEFAULTS.breakGlassReviewDays;
  }

  /**
   * Who may list and review: an active privacy officer of the practice, or the `system` actor
   * (if it acts on someone's behalf, that someone must be an active privacy officer). Otherwise
   * the denial is audited and a not-found error thrown.
   */
  async #authorize(
    ctx: AccessContext,
    action: string,
    resourceId: string | null,
    resourceType: 'practice' | 'break-glass',
    now: Date,
  ): Promise<string> {
    if (await this.#mayReview(ctx)) {
      return ctx.actor.kind === 'system' ? (ctx.onBehalfOf ?? ctx.actor.id) : ctx.actor.id;
    }
    await this.#audit(
      this.#o.db,
      ctx,
      {
        action,
        resourceType,
        resourceId,
        outcome: 'denied',
        reason:
          ctx.actor.kind === 'user' || ctx.actor.kind === 'system' ? 'not-privacy-officer' : 'actor-kind',
      },
      now,
    );
    throw notFound(resourceType === 'practice' ? 'break-glass review' : 'break-glass grant');
  }

  async #mayReview(ctx: AccessContext): Promise<boolean> {
    switch (ctx.actor.kind) {
      case 'system':
        return ctx.onBehalfOf === undefined || this.#isPrivacyOfficer(ctx.practiceId, ctx.onBehalfOf);
      case 'user':
        return this.#isPrivacyOfficer(ctx.practiceId, ctx.actor.id);
      default:
        return false;
    }
  }

  #isPrivacyOfficer(practiceId: string, id: string): Promise<boolean> {
    return isActivePrivacyOfficer(this.#o.db, practiceId, id);
  }

  /** An entry of the officer's oversight: its purpose is `audit` (a holder ending a grant keeps theirs). */
  #audit(db: Kysely<CoreDb>, ctx: AccessContext, event: AuditEvent, at: Date): Promise<void> {
    return append(db, ctx.purpose === 'audit' ? ctx : { ...ctx, purpose: 'audit' }, event, at);
  }
}

function isOverdue(r: { reviewed_at: Date | null; starts_at: Date }, now: Date, days: number): boolean {
  return r.reviewed_at === null && now.getTime() - r.starts_at.getTime() > days * DAY_MS;
}

/** The id as the audit entry names it: a malformed one is cut short (it is attacker input). */
const idOf = (id: string): string => String(id).slice(0, 64);

const alreadyReviewed = () =>
  new CustosError('CUSTOS_ERR_CONFLICT', 'this break-glass grant has already been reviewed');
const alreadyEnded = () => new CustosError('CUSTOS_ERR_CONFLICT', 'this break-glass grant has already ended');
