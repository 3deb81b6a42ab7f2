import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { CoreDb } from '../db/schema.ts';
import { validationError } from '../errors.ts';
import { checkTimeZone } from './time.ts';

/**
 * A practice's scheduling settings, kept in `practices.settings.scheduling`: the time zone its
 * working hours and series are in (and reminders are written in), and how long before an
 * appointment its reminder goes out.
 */

export const DEFAULT_TIME_ZONE = 'Europe/Amsterdam';
export const DEFAULT_REMINDER_LEAD_HOURS = 24;

export const SchedulingSettingsInput = z
  .object({
    timeZone: z.string('must be an IANA time zone such as Europe/Amsterdam').optional(),
    reminderLeadHours: z
      .number('must be a number')
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(168, 'must be at most 168 (a week)')
      .optional(),
  })
  .strict();

export interface SchedulingSettings {
  readonly practiceName: string;
  readonly timeZone: string;
  readonly reminderLeadHours: number;
}

/** The practice's name and scheduling settings, defaults filled in (a bad stored zone falls back). */
export async function schedulingSettings(
  db: Kysely<CoreDb>,
  practiceId: string,
): Promise<SchedulingSettings> {
  const row = await db
    .selectFrom('practices')
    .select(['name', 'settings'])
    .where('id', '=', practiceId)
    .executeTakeFirst();
  const stored = ((row?.settings ?? {}) as { scheduling?: unknown }).scheduling;
  const s = SchedulingSettingsInput.safeParse(stored ?? {});
  const data = s.success ? s.data : {};
  let timeZone = DEFAULT_TIME_ZONE;
  try {
    timeZone = data.timeZone ? checkTimeZone(data.timeZone) : DEFAULT_TIME_ZONE;
  } catch {
    // A zone this Node's ICU no longer knows: the default, rather than a scheduler that cannot run.
  }
  return {
    practiceName: row?.name ?? 'Custos',
    timeZone,
    reminderLeadHours: data.reminderLeadHours ?? DEFAULT_REMINDER_LEAD_HOURS,
  };
}

/** Changes the scheduling settings (admin); errors name the field (`settings.timeZone`). */
export async function setSchedulingSettings(
  db: Kysely<CoreDb>,
  practiceId: string,
  input: unknown,
): Promise<SchedulingSettings> {
  const r = SchedulingSettingsInput.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError(
      ['settings', ...(issue?.path ?? []).map(String)].join('.'),
      issue?.message ?? 'is invalid',
    );
  }
  const next: { timeZone?: string; reminderLeadHours?: number } = { ...r.data };
  if (next.timeZone !== undefined) {
    next.timeZone = checkTimeZone(next.timeZone, 'settings.timeZone');
  }
  await db.transaction().execute(async (tx) => {
    const row = await tx
      .selectFrom('practices')
      .select('settings')
      .where('id', '=', practiceId)
      .forUpdate()
      .executeTakeFirstOrThrow();
    const settings = (row.settings ?? {}) as Record<string, unknown>;
    const scheduling = { ...((settings.scheduling as object | undefined) ?? {}), ...next };
    await tx
      .updateTable('practices')
      .set({ settings: JSON.stringify({ ...settings, scheduling }) })
      .where('id', '=', practiceId)
      .execute();
  });
  return schedulingSettings(db, practiceId);
}
