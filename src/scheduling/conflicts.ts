import { CustosError } from '../errors.ts';
import { type WorkingHours, workingIntervals } from './hours.ts';
import { covered, type Interval, overlaps } from './intervals.ts';

/**
 * Conflict detection for a proposed appointment: the clinician already busy, the room already
 * taken, or (when the clinician has working hours) the slot outside them. A conflict names what
 * conflicts and when, never whose appointment it is.
 */

export interface Slot extends Interval {
  readonly clinicianId: string;
  readonly room: string | null;
}

export type ConflictKind = 'clinician' | 'room' | 'hours';

export interface Conflict {
  readonly kind: ConflictKind;
  /** The occupied interval (clinician, room) or the proposed one (hours). */
  readonly start: Date;
  readonly end: Date;
}

/** Statuses in which an appointment occupies its clinician and room. */
export const OCCUPYING = ['booked', 'completed'] as const;

/** Longest appointment: a working day. */
export const MAX_APPOINTMENT_MINUTES = 12 * 60;

/**
 * The conflicts of `proposed` with `existing` (appointments that occupy time; the one being
 * rescheduled left out) and with the clinician's working hours, if any are set.
 */
export function conflictsOf(
  proposed: Slot,
  existing: readonly Slot[],
  hours: { readonly hours: readonly WorkingHours[]; readonly timeZone: string } | null,
): Conflict[] {
  const out: Conflict[] = [];
  for (const e of existing) {
    if (!overlaps(proposed, e)) {
      continue;
    }
    if (e.clinicianId === proposed.clinicianId) {
      out.push({ kind: 'clinician', start: e.start, end: e.end });
    }
    if (proposed.room !== null && e.room === proposed.room) {
      out.push({ kind: 'room', start: e.start, end: e.end });
    }
  }
  if (hours && hours.hours.length > 0) {
    const working = workingIntervals(hours.hours, proposed.start, proposed.end, hours.timeZone);
    if (!covered(proposed, working)) {
      out.push({ kind: 'hours', start: proposed.start, end: proposed.end });
    }
  }
  return out.sort((a, b) => a.start.getTime() - b.start.getTime() || a.kind.localeCompare(b.kind));
}

/** Conflicts among the proposed slots themselves (a series that overlaps itself). */
export function selfConflicts(slots: readonly Slot[]): Map<number, Conflict[]> {
  const out = new Map<number, Conflict[]>();
  slots.forEach((s, i) => {
    const c = conflictsOf(s, slots.slice(0, i), null);
    if (c.length > 0) {
      out.set(i, c);
    }
  });
  return out;
}

/**
 * The room a booking uses: the one asked for, else the room of the working-hours interval that
 * covers it, else none.
 */
export function roomFor(
  proposed: Interval,
  asked: string | null | undefined,
  hours: { readonly hours: readonly WorkingHours[]; readonly timeZone: string } | null,
): string | null {
  if (asked) {
    return asked;
  }
  if (!hours || hours.hours.length === 0) {
    return null;
  }
  const w = workingIntervals(hours.hours, proposed.start, proposed.end, hours.timeZone).find(
    (i) => i.start.getTime() <= proposed.start.getTime() && proposed.end.getTime() <= i.end.getTime(),
  );
  return w?.room ?? null;
}

/** The conflicts of one occurrence of a booking (index 0 for a single appointment). */
export interface OccurrenceConflicts {
  readonly index: number;
  readonly start: Date;
  readonly end: Date;
  readonly conflicts: readonly Conflict[];
}

/**
 * A booking refused for conflicts (HTTP 409). It names what conflicts (clinician, room, working
 * hours) and when, per occurrence; never whose appointment is in the way.
 */
export class SlotConflict extends CustosError {
  readonly occurrences: readonly OccurrenceConflicts[];

  constructor(occurrences: readonly OccurrenceConflicts[]) {
    const kinds = [...new Set(occurrences.flatMap((o) => o.conflicts.map((c) => c.kind)))].sort();
    const what = kinds.map((k) => (k === 'hours' ? 'working hours' : k)).join(', ');
    super(
      'CUSTOS_ERR_CONFLICT',
      occurrences.length === 1 && occurrences[0]?.index === 0
        ? `the time conflicts (${what})`
        : `${occurrences.length} occurrence(s) conflict (${what}); nothing was booked`,
    );
    this.name = 'SlotConflict';
    this.occurrences = occurrences;
  }
}
