import { z } from 'zod';
import { validationError } from '../errors.ts';
import { MAX_RANGE_DAYS } from './availability.ts';
import { MAX_APPOINTMENT_MINUTES } from './conflicts.ts';
import { ROOM } from './hours.ts';
import type { Interval } from './intervals.ts';
import { MAX_OCCURRENCES } from './recurrence.ts';
import { WEEKDAYS } from './time.ts';

/**
 * The inputs of the scheduling calls, shared by the gate (which checks them again for callers
 * other than HTTP) and the routes (which publish them in the OpenAPI document). Messages name
 * what is wrong, never the value.
 */

const isoDateTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with zone' });
const anyId = z.string('must be an id').max(100, 'must be an id');
const userId = z.uuid('must be a user id');
const duration = z
  .number('must be a number')
  .int('must be a whole number of minutes')
  .min(5, 'must be at least 5')
  .max(MAX_APPOINTMENT_MINUTES, `must be at most ${MAX_APPOINTMENT_MINUTES}`);
const reason = z
  .string('must be a string')
  .trim()
  .min(1, 'must not be empty')
  .max(1000, 'must be at most 1000 characters');
const version = z.number('must be a number').int('must be a whole number').min(1, 'must be at least 1');

/** When: `start` and either `end` or `durationMinutes`. */
const when = {
  start: isoDateTime,
  end: isoDateTime.optional(),
  durationMinutes: duration.optional(),
};

export const BookInput = z
  .object({
    patientId: anyId,
    clinicianId: userId,
    ...when,
    room: ROOM.optional(),
    reason: reason
      .optional()
      .meta({ description: 'clinical: not for front desk, who neither sees nor writes it' }),
  })
  .strict();
export type BookInput = z.infer<typeof BookInput>;

export const SeriesInput = BookInput.extend({
  count: z
    .number('must be a number')
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(MAX_OCCURRENCES, `must be at most ${MAX_OCCURRENCES}`)
    .optional(),
  until: isoDateTime.optional(),
  everyWeeks: z.number('must be a number').int('must be a whole number').min(1).max(4).optional(),
}).strict();
export type SeriesInput = z.infer<typeof SeriesInput>;

export const RescheduleInput = z
  .object({
    expectedVersion: version,
    ...when,
    clinicianId: userId.optional(),
    room: ROOM.nullable().optional().meta({ description: 'null: no room' }),
    reason: reason.optional(),
  })
  .strict();
export type RescheduleInput = z.infer<typeof RescheduleInput>;

export const CANCEL_CODES = [
  'patient-request',
  'clinician-unavailable',
  'practice',
  'weather',
  'other',
] as const;
export const CancelInput = z
  .object({
    reasonCode: z.enum(CANCEL_CODES, `must be one of ${CANCEL_CODES.join(', ')}`),
    expectedVersion: version.optional(),
  })
  .strict();
export type CancelInput = z.infer<typeof CancelInput>;

export const NoShowInput = z.object({ expectedVersion: version.optional() }).strict();

export const RangeInput = z
  .object({
    clinicianId: userId.optional(),
    from: isoDateTime,
    to: isoDateTime,
  })
  .strict();

export const AvailabilityInput = RangeInput.extend({
  clinicianId: userId,
  slotMinutes: duration.optional().meta({ description: 'cut the free time into slots of this length' }),
  stepMinutes: duration.optional().meta({ description: 'slot starts this far apart (default slotMinutes)' }),
}).strict();

const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;
export const Preferred = z
  .object({
    weekdays: z
      .array(z.enum(WEEKDAYS, `must be one of ${WEEKDAYS.join(', ')}`))
      .max(7)
      .optional(),
    from: z.string().regex(TIME, 'must be a time HH:MM').optional(),
    to: z
      .string()
      .refine((v) => TIME.test(v) || v === '24:00', 'must be a time HH:MM')
      .optional(),
  })
  .strict();
export type Preferred = z.infer<typeof Preferred>;

export const WaitingInput = z
  .object({
    patientId: anyId,
    clinicianId: userId.optional().meta({ description: 'absent: any clinician' }),
    note: reason.optional().meta({ description: 'clinical, like the reason for a visit' }),
    preferred: Preferred.optional(),
  })
  .strict();
export type WaitingInput = z.infer<typeof WaitingInput>;

export const MatchInput = z.object({ clinicianId: userId, start: isoDateTime, end: isoDateTime }).strict();

export const OfferInput = z
  .object({
    clinicianId: userId.optional().meta({ description: "default: the entry's clinician" }),
    ...when,
    room: ROOM.optional(),
  })
  .strict();
export type OfferInput = z.infer<typeof OfferInput>;

/** Parses with a schema; the first problem becomes a validation error naming its field. */
export function parse<T extends z.ZodType>(schema: T, input: unknown, prefix?: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) {
    return r.data;
  }
  const issue = r.error.issues[0];
  const path = [...(prefix ? [prefix] : []), ...(issue?.path ?? []).map(String)];
  throw validationError(path.join('.') || prefix || 'input', issue?.message ?? 'is invalid');
}

/**
 * The interval of a booking: `start` plus `end` or `durationMinutes` (one of them), on whole
 * minutes, at most 12 hours, and not in the past.
 */
export function slotOf(
  input: { start: string; end?: string | undefined; durationMinutes?: number | undefined },
  now: Date,
): Interval {
  const start = new Date(input.start);
  if ((input.end === undefined) === (input.durationMinutes === undefined)) {
    throw validationError('end', 'give either end or durationMinutes');
  }
  if (start.getTime() % 60_000 !== 0) {
    throw validationError('start', 'must be on a whole minute');
  }
  const end =
    input.end !== undefined
      ? new Date(input.end)
      : new Date(start.getTime() + (input.durationMinutes ?? 0) * 60_000);
  if (end.getTime() % 60_000 !== 0) {
    throw validationError('end', 'must be on a whole minute');
  }
  if (end.getTime() <= start.getTime()) {
    throw validationError('end', 'must be after start');
  }
  if (end.getTime() - start.getTime() > MAX_APPOINTMENT_MINUTES * 60_000) {
    throw validationError('end', `must be at most ${MAX_APPOINTMENT_MINUTES / 60} hours after start`);
  }
  if (start.getTime() < now.getTime()) {
    throw validationError('start', 'must not be in the past');
  }
  return { start, end };
}

/** A range for a calendar or availability question: from before to, at most a quarter. */
export function rangeOf(input: { from: string; to: string }): Interval {
  const start = new Date(input.from);
  const end = new Date(input.to);
  if (end.getTime() <= start.getTime()) {
    throw validationError('to', 'must be after from');
  }
  if (end.getTime() - start.getTime() > MAX_RANGE_DAYS * 86_400_000) {
    throw validationError('to', `must be at most ${MAX_RANGE_DAYS} days after from`);
  }
  return { start, end };
}
