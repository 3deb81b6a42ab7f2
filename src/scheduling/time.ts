import { validationError } from '../errors.ts';

/**
 * Wall-clock time in the practice's time zone, with nothing but `Intl` (no time-zone library):
 * working hours and weekly series are local ("Tuesdays 09:00"), appointments are instants (UTC).
 *
 * Local times that do not exist (the hour skipped when clocks go forward) and local times that
 * occur twice (the hour repeated when they go back) are resolved as RFC 5545 and Temporal's
 * `compatible` disambiguation do: a skipped time moves forward by the length of the gap
 * (02:30 becomes 03:30), a repeated time is its first occurrence.
 */

/** A calendar date `YYYY-MM-DD` (no zone). */
export type LocalDate = string;

/** ISO weekday: 1 = Monday … 7 = Sunday. */
export type IsoWeekday = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export const isoWeekday = (d: Weekday): IsoWeekday => (WEEKDAYS.indexOf(d) + 1) as IsoWeekday;
export const weekdayName = (n: IsoWeekday): Weekday => WEEKDAYS[n - 1] as Weekday;

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The canonical IANA name of a time zone, or a validation error naming `field`. */
export function checkTimeZone(value: unknown, field = 'timeZone'): string {
  if (typeof value !== 'string' || value === '' || value.length > 64) {
    throw validationError(field, 'must be an IANA time zone such as Europe/Amsterdam');
  }
  try {
    return new Intl.DateTimeFormat('en', { timeZone: value }).resolvedOptions().timeZone;
  } catch {
    throw validationError(field, 'must be an IANA time zone such as Europe/Amsterdam');
  }
}

interface Wall {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

function wallOf(ms: number, timeZone: string): Wall {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') {
      parts[p.type] = Number(p.value);
    }
  }
  return {
    year: parts.year ?? 1970,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

/** The zone's offset from UTC at an instant, in milliseconds (e.g. +3 600 000 for CET). */
export function offsetAt(ms: number, timeZone: string): number {
  const w = wallOf(ms, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses `YYYY-MM-DD` into its UTC midnight (date arithmetic only). */
function dateMs(date: LocalDate): number {
  const m = DATE.exec(date);
  if (!m) {
    throw new TypeError('a local date is YYYY-MM-DD');
  }
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const dateOfMs = (ms: number): LocalDate => {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
};

export const addDays = (date: LocalDate, days: number): LocalDate => dateOfMs(dateMs(date) + days * DAY_MS);

/** The ISO weekday of a calendar date. */
export function weekdayOf(date: LocalDate): IsoWeekday {
  const d = new Date(dateMs(date)).getUTCDay();
  return (((d + 6) % 7) + 1) as IsoWeekday;
}

/** Minutes since midnight of `HH:MM` (`24:00` is 1440). */
export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':');
  return Number(h) * 60 + Number(m);
}

export const hhmm = (minutes: number): string => `${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;

/**
 * The instant at which the wall clock in `timeZone` shows `date` plus `minutes` (0 to 1440).
 * A skipped local time moves forward by the gap; a repeated one is its first occurrence.
 */
export function zonedToUtc(date: LocalDate, minutes: number, timeZone: string): Date {
  const guess = dateMs(date) + minutes * MINUTE_MS;
  // A transition is never closer than a day to another: the offsets a day before and after
  // are the only two the answer can have.
  const before = offsetAt(guess - DAY_MS, timeZone);
  const after = offsetAt(guess + DAY_MS, timeZone);
  const candidates = [...new Set([before, after])]
    .map((o) => guess - o)
    .filter((t) => offsetAt(t, timeZone) === guess - t)
    .sort((a, b) => a - b);
  const first = candidates[0];
  // No candidate: the time is in a gap; the offset before the gap moves it forward.
  return new Date(first ?? guess - before);
}

/** The wall-clock date, minutes since midnight and weekday of an instant in `timeZone`. */
export function utcToZoned(
  at: Date,
  timeZone: string,
): { date: LocalDate; minutes: number; weekday: IsoWeekday; time: string } {
  const w = wallOf(at.getTime(), timeZone);
  const date = `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
  const minutes = w.hour * 60 + w.minute;
  return { date, minutes, weekday: weekdayOf(date), time: hhmm(minutes) };
}

/** The local dates whose days overlap [from, to), one before and one after for safety. */
export function localDatesCovering(from: Date, to: Date, timeZone: string): LocalDate[] {
  const first = addDays(utcToZoned(from, timeZone).date, -1);
  const last = addDays(utcToZoned(to, timeZone).date, 1);
  const out: LocalDate[] = [];
  for (let d = first; d <= last; d = addDays(d, 1)) {
    out.push(d);
  }
  return out;
}
