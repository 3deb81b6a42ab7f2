import { z } from 'zod';
import { validationError } from '../errors.ts';
import { clip, type Interval } from './intervals.ts';
import {
  isoWeekday,
  localDatesCovering,
  minutesOf,
  WEEKDAYS,
  type Weekday,
  weekdayOf,
  zonedToUtc,
} from './time.ts';

/**
 * A clinician's working hours: per weekday, local start and end times in the practice's time
 * zone (split shifts are several entries), each optionally in a room. Not health data.
 */

const TIME = /^([01]\d|2[0-3]):[0-5]\d$/;
export const ROOM = z
  .string('must be a string')
  .trim()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .regex(/^[\p{L}\p{N} ._/-]+$/u, 'must be letters, digits, spaces and . _ / -');

export const HoursEntry = z
  .object({
    weekday: z.enum(WEEKDAYS, `must be one of ${WEEKDAYS.join(', ')}`),
    start: z.string('must be a time HH:MM').regex(TIME, 'must be a time HH:MM'),
    end: z
      .string('must be a time HH:MM')
      .refine((v) => TIME.test(v) || v === '24:00', 'must be a time HH:MM (24:00 for midnight)'),
    room: ROOM.optional(),
  })
  .strict();
export type HoursEntry = z.infer<typeof HoursEntry>;

export const WorkingHoursInput = z
  .object({ hours: z.array(HoursEntry, 'must be a list').max(50, 'must have at most 50 entries') })
  .strict();

/** An entry as stored: ISO weekday, local times, room or null. */
export interface WorkingHours {
  readonly weekday: Weekday;
  readonly start: string;
  readonly end: string;
  readonly room: string | null;
}

/**
 * Checks a week of working hours: each entry ends after it starts and entries of one weekday do
 * not overlap. Errors name the field (`hours.2.end`).
 */
export function parseWorkingHours(input: unknown): WorkingHours[] {
  const r = WorkingHoursInput.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError(
      (issue?.path ?? []).map(String).join('.') || 'hours',
      issue?.message ?? 'is invalid',
    );
  }
  const hours = r.data.hours.map((h) => ({
    weekday: h.weekday,
    start: h.start,
    end: h.end,
    room: h.room ?? null,
  }));
  hours.forEach((h, i) => {
    if (minutesOf(h.end) <= minutesOf(h.start)) {
      throw validationError(`hours.${i}.end`, 'must be after start');
    }
    hours.forEach((o, j) => {
      if (
        j < i &&
        o.weekday === h.weekday &&
        minutesOf(h.start) < minutesOf(o.end) &&
        minutesOf(o.start) < minutesOf(h.end)
      ) {
        throw validationError(`hours.${i}`, `overlaps hours.${j} on the same weekday`);
      }
    });
  });
  return hours.sort(
    (a, b) => isoWeekday(a.weekday) - isoWeekday(b.weekday) || minutesOf(a.start) - minutesOf(b.start),
  );
}

/** A working interval as instants, with its room. */
export interface WorkingInterval extends Interval {
  readonly room: string | null;
}

/**
 * The working hours as instants over [from, to): each local date's entries converted in the
 * practice's zone (so 09:00 stays 09:00 across a daylight-saving change), clipped to the range.
 */
export function workingIntervals(
  hours: readonly WorkingHours[],
  from: Date,
  to: Date,
  timeZone: string,
): WorkingInterval[] {
  const out: WorkingInterval[] = [];
  for (const date of localDatesCovering(from, to, timeZone)) {
    const day = weekdayOf(date);
    for (const h of hours) {
      if (isoWeekday(h.weekday) !== day) {
        continue;
      }
      out.push({
        start: zonedToUtc(date, minutesOf(h.start), timeZone),
        end: zonedToUtc(date, minutesOf(h.end), timeZone),
        room: h.room,
      });
    }
  }
  return clip(out, from, to)
    .map((i) => i as WorkingInterval)
    .sort((a, b) => a.start.getTime() - b.start.getTime());
}
