import { validationError } from '../errors.ts';
import type { Interval } from './intervals.ts';
import { addDays, utcToZoned, zonedToUtc } from './time.ts';

/** Most occurrences one weekly series may have (two years of weekly sessions). */
export const MAX_OCCURRENCES = 104;

export interface WeeklyRule {
  /** The first occurrence. */
  readonly start: Date;
  readonly end: Date;
  /** The practice's zone: each occurrence keeps the first one's local wall-clock time. */
  readonly timeZone: string;
  /** How many occurrences, the first included. */
  readonly count?: number;
  /** Or: every occurrence that starts before the end of this instant's local day. */
  readonly until?: Date;
  /** Every n weeks (default 1). */
  readonly everyWeeks?: number;
}

/**
 * Expands a weekly series (RFC 5545 `FREQ=WEEKLY;INTERVAL=n;COUNT=c` or `UNTIL=`): the same
 * weekday and the same local time every n weeks, so a Tuesday 17:00 session stays at 17:00 local
 * when daylight saving time begins or ends (its UTC time moves by the offset change). A local
 * start that falls in a skipped hour moves forward by the gap; every occurrence lasts as long
 * as the first.
 *
 * @example
 *   weeklyOccurrences({ start, end, timeZone: 'Europe/Amsterdam', count: 10 })
 */
export function weeklyOccurrences(rule: WeeklyRule): Interval[] {
  const every = rule.everyWeeks ?? 1;
  if (!Number.isInteger(every) || every < 1 || every > 4) {
    throw validationError('everyWeeks', 'must be a whole number from 1 to 4');
  }
  if ((rule.count === undefined) === (rule.until === undefined)) {
    throw validationError('count', 'give either count or until');
  }
  if (
    rule.count !== undefined &&
    (!Number.isInteger(rule.count) || rule.count < 1 || rule.count > MAX_OCCURRENCES)
  ) {
    throw validationError('count', `must be a whole number from 1 to ${MAX_OCCURRENCES}`);
  }
  const first = utcToZoned(rule.start, rule.timeZone);
  // Each occurrence lasts as long as the first (a 50-minute session is 50 minutes, even when it
  // starts in the hour skipped by the change to summer time).
  const length = rule.end.getTime() - rule.start.getTime();
  let limitDate: string | undefined;
  if (rule.until !== undefined) {
    if (rule.until.getTime() < rule.start.getTime()) {
      throw validationError('until', 'must not be before the first occurrence');
    }
    limitDate = utcToZoned(rule.until, rule.timeZone).date;
  }
  const out: Interval[] = [];
  for (let i = 0; ; i++) {
    const date = addDays(first.date, i * 7 * every);
    if (rule.count !== undefined && i >= rule.count) {
      break;
    }
    if (limitDate !== undefined && date > limitDate) {
      break;
    }
    if (out.length >= MAX_OCCURRENCES) {
      throw validationError('until', `makes more than ${MAX_OCCURRENCES} occurrences`);
    }
    // The first occurrence is exactly the one asked for (even in a repeated hour).
    out.push(
      i === 0
        ? { start: rule.start, end: rule.end }
        : (() => {
            const start = zonedToUtc(date, first.minutes, rule.timeZone);
            return { start, end: new Date(start.getTime() + length) };
          })(),
    );
  }
  return out;
}
