import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import type { Fields } from '../access/grants.ts';
import type { PatientFacts } from '../access/policy.ts';
import { validationError } from '../errors.ts';
import {
  type Conflict,
  conflictsOf,
  type OccurrenceConflicts,
  roomFor,
  type Slot,
  SlotConflict,
  selfConflicts,
} from '../scheduling/conflicts.ts';
import type { Interval } from '../scheduling/intervals.ts';
import {
  appointmentFields,
  assertClinician,
  type HoursContext,
  hoursOf,
  reasonAt,
  sealText,
  seesReason,
} from './appointments.access.ts';
import * as astore from './appointments.store.ts';
import type * as store from './chart.store.ts';
import type { CallKeys, Link } from './cipher.ts';
import type { GateCore, Target } from './gate-core.ts';

/**
 * Placing bookings: one appointment or a series for one patient and clinician, checked against
 * the clinician's and rooms' other appointments and working hours under the locks the
 * double-booking trigger takes (migration 012), all or nothing.
 *
 * Booking the clinician of an appointment onto the patient's care team: the appointment is the
 * treatment relationship, so a clinician booked for a patient joins its care team (when the
 * caller may manage it: front desk, a clinician on the team), recorded in the entry.
 */

/**
 * Puts the clinician on the patient's care team when they are not on it, if the caller may
 * manage the team; otherwise a booking for them is refused (400 naming `field`).
 */
export async function ensureOnTeam(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  t: Target,
  p: { id: string; facts: PatientFacts },
  clinicianId: string,
  field: string,
): Promise<void> {
  const now = g.clock();
  if (await astore.onCareTeam(tx, p.id, clinicianId, now)) {
    return;
  }
  if (!g.policy(g.subject(ctx), 'care-team', { kind: 'patient' }, { patient: p.facts }).allow) {
    throw validationError(field, "is not on the patient's care team, and the caller may not add them");
  }
  await tx
    .insertInto('care_team')
    .values({
      practice_id: ctx.practiceId,
      patient_id: p.id,
      user_id: clinicianId,
      starts_at: now,
      ends_at: null,
      added_by: ctx.actor.id,
    })
    .execute();
  t.detail = { ...(t.detail ?? {}), careTeamAdded: clinicianId };
}

/** Refuses a reason from a caller who may not read it (front desk): they neither see nor write it. */
export function assertMayWriteReason(fields: Fields | undefined, given: boolean, field: string): void {
  if (given && !seesReason(fields)) {
    throw validationError(field, "is clinical; the caller's role does not record it");
  }
}

/**
 * Checks the slots against the clinician's and rooms' other appointments and the working hours,
 * under the locks the double-booking trigger takes; throws one SlotConflict naming every
 * conflicting occurrence. Returns each slot's room.
 */
export async function checkSlots(
  tx: store.Tx,
  ctx: AccessContext,
  clinicianId: string,
  slots: readonly Interval[],
  askedRoom: string | null | undefined,
  hours: HoursContext,
  except?: string,
): Promise<Slot[]> {
  const planned: Slot[] = slots.map((s) => ({ ...s, clinicianId, room: roomFor(s, askedRoom, hours) }));
  const rooms = planned.flatMap((s) => (s.room === null ? [] : [s.room]));
  await astore.lockSlots(tx, ctx.practiceId, clinicianId, rooms);
  const existing = await astore.occupying(tx, {
    practiceId: ctx.practiceId,
    clinicianId,
    rooms: [...new Set(rooms)],
    from: new Date(Math.min(...planned.map((s) => s.start.getTime()))),
    to: new Date(Math.max(...planned.map((s) => s.end.getTime()))),
    ...(except ? { except } : {}),
  });
  const self = selfConflicts(planned);
  const found: OccurrenceConflicts[] = [];
  planned.forEach((s, index) => {
    const c: Conflict[] = [...conflictsOf(s, existing, hours), ...(self.get(index) ?? [])];
    if (c.length > 0) {
      found.push({ index, start: s.start, end: s.end, conflicts: c });
    }
  });
  if (found.length > 0) {
    throw new SlotConflict(found);
  }
  return planned;
}

/** Runs a write that the double-booking trigger may refuse; its refusal becomes a SlotConflict. */
export async function guarded<T>(slot: Interval, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    const kind = astore.overlapKind(e);
    if (kind === undefined) {
      throw e;
    }
    throw new SlotConflict([{ index: 0, start: slot.start, end: slot.end, conflicts: [{ kind, ...slot }] }]);
  }
}

/**
 * Books appointments for one patient and clinician at the given slots (one, or a series): all or
 * nothing. The caller has decided `write` on the patient's appointments.
 */
export async function placeBookings(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  t: Target,
  keys: CallKeys,
  p: { id: string; link: Link; facts: PatientFacts },
  input: {
    clinicianId: string;
    slots: readonly Interval[];
    room?: string | undefined;
    reason?: string | undefined;
    seriesId?: string | null;
  },
): Promise<astore.AppointmentRow[]> {
  await assertClinician(tx, ctx, input.clinicianId, 'clinicianId');
  const fields = appointmentFields(g, ctx, p.facts);
  assertMayWriteReason(fields, input.reason !== undefined, 'reason');
  const hours = await hoursOf(tx, ctx, input.clinicianId);
  await ensureOnTeam(g, tx, ctx, t, p, input.clinicianId, 'clinicianId');
  const planned = await checkSlots(tx, ctx, input.clinicianId, input.slots, input.room, hours);
  const now = g.clock();
  const rows: astore.AppointmentRow[] = [];
  for (const s of planned) {
    const id = randomUUID();
    const row: astore.AppointmentRow = {
      id,
      practice_id: ctx.practiceId,
      pseudonym: p.link.pseudonym,
      clinician_id: input.clinicianId,
      room: s.room,
      starts_at: s.start,
      ends_at: s.end,
      status: 'booked',
      series_id: input.seriesId ?? null,
      version: 1,
      reason:
        input.reason === undefined ? null : await sealText(g, tx, keys, p.link, reasonAt(id), input.reason),
      cancel_code: null,
      reminder_sent_at: null,
      created_at: now,
      created_by: ctx.actor.id,
      updated_at: now,
      updated_by: ctx.actor.id,
    };
    await guarded(s, () => tx.insertInto('appointments').values(row).execute());
    rows.push(row);
  }
  t.detail = { ...(t.detail ?? {}), clinicianId: input.clinicianId };
  return rows;
}
