import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { CoreDb } from '../db/schema.ts';
import { validationError } from '../errors.ts';

/**
 * Session timeouts a practice may set for itself (HIPAA 164.312(a)(2)(iii) leaves the period to
 * the practice). Bounds keep a typo from disabling automatic logoff.
 */
export const SessionSettings = z
  .object({
    idleTimeoutMinutes: z
      .number()
      .int()
      .min(1, 'must be at least 1')
      .max(60, 'must be at most 60')
      .optional(),
    absoluteTimeoutHours: z
      .number()
      .int()
      .min(1, 'must be at least 1')
      .max(24, 'must be at most 24')
      .optional(),
  })
  .strict();
export type SessionSettings = z.infer<typeof SessionSettings>;

/**
 * Access-review periods (HIPAA 164.308(a)(4) and (a)(1)(ii)(D)): after how many days without a
 * login an account is disabled, how often each account must be reviewed, and within how many
 * days a break-the-glass access must be reviewed. Bounds keep a typo from switching a rule off.
 */
export const AccessSettings = z
  .object({
    dormantDays: z.number().int().min(7, 'must be at least 7').max(365, 'must be at most 365').optional(),
    reviewIntervalDays: z
      .number()
      .int()
      .min(7, 'must be at least 7')
      .max(730, 'must be at most 730')
      .optional(),
    breakGlassReviewDays: z
      .number()
      .int()
      .min(1, 'must be at least 1')
      .max(90, 'must be at most 90')
      .optional(),
  })
  .strict();
export type AccessSettings = z.infer<typeof AccessSettings>;
export type AccessPeriods = Required<AccessSettings>;
export const ACCESS_DEFAULTS: AccessPeriods = Object.freeze({
  dormantDays: 90,
  reviewIntervalDays: 90,
  breakGlassReviewDays: 7,
});

export interface SessionLimits {
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
}

/** Reads and writes practice settings; reads are cached for a few seconds (they change rarely). */
export class PracticeSettings {
  readonly #db: Kysely<CoreDb>;
  readonly #defaults: SessionLimits;
  readonly #cache = new Map<string, { at: number; limits: SessionLimits }>();

  constructor(options: { db: Kysely<CoreDb>; defaults: SessionLimits }) {
    this.#db = options.db;
    this.#defaults = options.defaults;
  }

  async sessionLimits(practiceId: string): Promise<SessionLimits> {
    const hit = this.#cache.get(practiceId);
    if (hit && performance.now() - hit.at < 5000) {
      return hit.limits;
    }
    const row = await this.#db
      .selectFrom('practices')
      .select('settings')
      .where('id', '=', practiceId)
      .executeTakeFirst();
    const s = z.object(SessionSettings.shape).safeParse(row?.settings ?? {});
    const settings = s.success ? s.data : {};
    const limits = {
      idleTimeoutMs: (settings.idleTimeoutMinutes ?? this.#defaults.idleTimeoutMs / 60_000) * 60_000,
      absoluteTimeoutMs:
        (settings.absoluteTimeoutHours ?? this.#defaults.absoluteTimeoutMs / 3_600_000) * 3_600_000,
    };
    this.#cache.set(practiceId, { at: performance.now(), limits });
    return limits;
  }

  /** The practice's access-review periods, defaults filled in (not cached: read hourly at most). */
  async accessSettings(practiceId: string): Promise<AccessPeriods> {
    const row = await this.#db
      .selectFrom('practices')
      .select('settings')
      .where('id', '=', practiceId)
      .executeTakeFirst();
    const s = z.object(AccessSettings.shape).safeParse(row?.settings ?? {});
    return { ...ACCESS_DEFAULTS, ...(s.success ? s.data : {}) };
  }

  async setAccessSettings(practiceId: string, input: unknown): Promise<AccessSettings> {
    return this.#store(practiceId, AccessSettings, input);
  }

  async setSessionSettings(practiceId: string, input: unknown): Promise<SessionSettings> {
    return this.#store(practiceId, SessionSettings, input);
  }

  async #store<T extends z.ZodType<Record<string, unknown>>>(
    practiceId: string,
    schema: T,
    input: unknown,
  ): Promise<z.infer<T>> {
    const r = schema.safeParse(input);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw validationError(
        ['settings', ...(issue?.path ?? []).map(String)].join('.'),
        issue?.message ?? 'is invalid',
      );
    }
    const row = await this.#db
      .selectFrom('practices')
      .select('settings')
      .where('id', '=', practiceId)
      .executeTakeFirstOrThrow();
    const next = { ...(row.settings as Record<string, unknown>), ...r.data };
    await this.#db
      .updateTable('practices')
      .set({ settings: JSON.stringify(next) })
      .where('id', '=', practiceId)
      .execute();
    this.#cache.delete(practiceId);
    return r.data;
  }
}
