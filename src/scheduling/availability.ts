import { type WorkingHours, workingIntervals } from './hours.ts';
import { type Interval, subtract } from './intervals.ts';
import { utcToZoned } from './time.ts';

/** Longest range one availability or calendar question may cover (a quarter). */
export const MAX_RANGE_DAYS = 92;

export interface AvailabilityInput {
  readonly hours: readonly WorkingHours[];
  /** Appointments that occupy the clinician (booked or completed), any patient: times only. */
  readonly busy: readonly Interval[];
  readonly from: Date;
  readonly to: Date;
  readonly timeZone: string;
  /** Nothing before this instant is free (the past). */
  readonly notBefore?: Date;
  /** With a duration, the free time is also cut into bookable slots of that length. */
  readonly slotMinutes?: number;
  /** Slot starts are this many minutes apart (default: the duration), on the local clock's grid. */
  readonly stepMinutes?: number;
}

export interface Availability {
  readonly free: Interval[];
  readonly slots?: Interval[];
}

/**
 * Free time of a clinician: working hours over the range in the practice's zone, minus every
 * appointment that occupies them, minus the past. Carries no patient data by construction: its
 * input is times only.
 *
 * @example
 *   freeTime({ hours, busy, from, to, timeZone: 'Europe/Amsterdam', slotMinutes: 50 }).slots
 */
export function freeTime(input: AvailabilityInput): Availability {
  const from =
    input.notBefore && input.notBefore.getTime() > input.from.getTime() ? input.notBefore : input.from;
  if (from.getTime() >= input.to.getTime()) {
    return input.slotMinutes ? { free: [], slots: [] } : { free: [] };
  }
  const free = subtract(workingIntervals(input.hours, from, input.to, input.timeZone), input.busy);
  if (!input.slotMinutes) {
    return { free };
  }
  return {
    free,
    slots: slotsIn(free, input.slotMinutes, input.stepMinutes ?? input.slotMinutes, input.timeZone),
  };
}

/**
 * Slots of `minutes` in the free intervals, starting on the local grid of `step` minutes from
 * midnight (09:00, 09:50, … for 50; 09:00, 09:15, … for 15).
 */
export function slotsIn(
  free: readonly Interval[],
  minutes: number,
  step: number,
  timeZone: string,
): Interval[] {
  const out: Interval[] = [];
  const len = minutes * 60_000;
  for (const f of free) {
    const local = utcToZoned(f.start, timeZone).minutes;
    const seconds = f.start.getUTCSeconds() * 1000 + f.start.getUTCMilliseconds();
    const offGrid = (local % step) * 60_000 + seconds;
    let s = f.start.getTime() + (offGrid === 0 ? 0 : step * 60_000 - offGrid);
    while (s + len <= f.end.getTime()) {
      out.push({ start: new Date(s), end: new Date(s + len) });
      s += step * 60_000;
    }
  }
  return out;
}
