import type { Preferred } from './inputs.ts';
import type { Interval } from './intervals.ts';
import { isoWeekday, minutesOf, utcToZoned } from './time.ts';

/**
 * Whether a freed slot suits a waiting-list entry: the entry's clinician (or any), and its
 * preferred weekdays and local times, if it has any, in the practice's zone.
 */
export function suits(
  entry: { readonly clinicianId: string | null; readonly preferred: Preferred },
  slot: Interval & { readonly clinicianId: string },
  timeZone: string,
): boolean {
  if (entry.clinicianId !== null && entry.clinicianId !== slot.clinicianId) {
    return false;
  }
  const start = utcToZoned(slot.start, timeZone);
  const p = entry.preferred;
  if (p.weekdays && p.weekdays.length > 0 && !p.weekdays.some((d) => isoWeekday(d) === start.weekday)) {
    return false;
  }
  const length = Math.round((slot.end.getTime() - slot.start.getTime()) / 60_000);
  if (p.from !== undefined && start.minutes < minutesOf(p.from)) {
    return false;
  }
  if (p.to !== undefined && start.minutes + length > minutesOf(p.to)) {
    return false;
  }
  return true;
}
