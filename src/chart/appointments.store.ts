import { sql } from 'kysely';
import { OCCUPYING } from '../scheduling/conflicts.ts';
import type { WorkingHours } from '../scheduling/hours.ts';
import { isoWeekday, weekdayName } from '../scheduling/time.ts';
import type { Tx } from './chart.store.ts';
import type { ChartTables } from './tables.ts';

/** SQL for scheduling (migration 012). No decisions and no decryption here: rows in, rows out. */

export type AppointmentRow = ChartTables['appointments'];

export async function loadAppointment(
  tx: Tx,
  practiceId: string,
  id: string,
  forUpdate = false,
): Promise<AppointmentRow | undefined> {
  let q = tx
    .selectFrom('appointments')
    .selectAll()
    .where('practice_id', '=', practiceId)
    .where('id', '=', id);
  if (forUpdate) {
    q = q.forUpdate();
  }
  return q.executeTakeFirst();
}

/** An active user of the practice, with roles (to check that a clinician can be booked). */
export async function loadStaff(tx: Tx, practiceId: string, userId: string) {
  return tx
    .selectFrom('users')
    .select(['id', 'roles', 'status'])
    .where('practice_id', '=', practiceId)
    .where('id', '=', userId)
    .executeTakeFirst();
}

export async function loadHours(tx: Tx, clinicianId: string): Promise<WorkingHours[]> {
  const rows = await tx
    .selectFrom('working_hours')
    .select(['weekday', 'starts', 'ends', 'room'])
    .where('clinician_id', '=', clinicianId)
    .orderBy('weekday')
    .orderBy('starts')
    .execute();
  return rows.map((r) => ({
    weekday: weekdayName(r.weekday as 1),
    start: r.starts,
    end: r.ends,
    room: r.room,
  }));
}

export async function replaceHours(
  tx: Tx,
  q: { practiceId: string; clinicianId: string; hours: readonly WorkingHours[]; by: string; now: Date },
  ids: () => string,
): Promise<void> {
  await tx.deleteFrom('working_hours').where('clinician_id', '=', q.clinicianId).execute();
  if (q.hours.length > 0) {
    await tx
      .insertInto('working_hours')
      .values(
        q.hours.map((h) => ({
          id: ids(),
          practice_id: q.practiceId,
          clinician_id: q.clinicianId,
          weekday: isoWeekday(h.weekday),
          starts: h.start,
          ends: h.end,
          room: h.room,
          updated_at: q.now,
          updated_by: q.by,
        })),
      )
      .execute();
  }
}

/**
 * Takes the advisory locks of a clinician and its rooms until the transaction ends (the locks the
 * double-booking trigger takes, clinician first, rooms in order), so that the conflicts read next
 * are still true at commit.
 */
export async function lockSlots(tx: Tx, practiceId: string, clinicianId: string, rooms: readonly string[]) {
  await sql`SELECT custos_appointment_lock(${practiceId}::uuid, ${clinicianId}::uuid, NULL::text)`.execute(
    tx,
  );
  for (const room of [...new Set(rooms)].sort()) {
    await sql`SELECT custos_appointment_lock(${practiceId}::uuid, ${clinicianId}::uuid, ${room}::text)`.execute(
      tx,
    );
  }
}

/** Occupying appointments of a clinician or in any of the rooms that overlap [from, to): times only. */
export async function occupying(
  tx: Tx,
  q: {
    practiceId: string;
    clinicianId: string;
    rooms: readonly string[];
    from: Date;
    to: Date;
    except?: string;
  },
) {
  let query = tx
    .selectFrom('appointments')
    .select(['id', 'clinician_id', 'room', 'starts_at', 'ends_at'])
    .where('practice_id', '=', q.practiceId)
    .where('status', 'in', [...OCCUPYING])
    .where('starts_at', '<', q.to)
    .where('ends_at', '>', q.from)
    .where((eb) =>
      q.rooms.length === 0
        ? eb('clinician_id', '=', q.clinicianId)
        : eb.or([eb('clinician_id', '=', q.clinicianId), eb('room', 'in', [...q.rooms])]),
    );
  if (q.except !== undefined) {
    query = query.where('id', '<>', q.except);
  }
  const rows = await query.orderBy('starts_at').execute();
  return rows.map((r) => ({ clinicianId: r.clinician_id, room: r.room, start: r.starts_at, end: r.ends_at }));
}

/** The appointments of a clinician overlapping [from, to), cancelled ones left out. */
export async function clinicianAppointments(
  tx: Tx,
  q: { practiceId: string; clinicianId: string; from: Date; to: Date },
): Promise<AppointmentRow[]> {
  return tx
    .selectFrom('appointments')
    .selectAll()
    .where('practice_id', '=', q.practiceId)
    .where('clinician_id', '=', q.clinicianId)
    .where('status', '<>', 'cancelled')
    .where('starts_at', '<', q.to)
    .where('ends_at', '>', q.from)
    .orderBy('starts_at')
    .execute();
}

export async function patientAppointments(
  tx: Tx,
  q: { practiceId: string; pseudonym: string; from?: Date | undefined; to?: Date | undefined },
): Promise<AppointmentRow[]> {
  let query = tx
    .selectFrom('appointments')
    .selectAll()
    .where('practice_id', '=', q.practiceId)
    .where('pseudonym', '=', q.pseudonym);
  if (q.from) {
    query = query.where('ends_at', '>', q.from);
  }
  if (q.to) {
    query = query.where('starts_at', '<', q.to);
  }
  return query.orderBy('starts_at').execute();
}

/** Whether the user is on the patient's care team now. */
export async function onCareTeam(tx: Tx, patientId: string, userId: string, now: Date): Promise<boolean> {
  const row = await tx
    .selectFrom('care_team')
    .select('user_id')
    .where('patient_id', '=', patientId)
    .where('user_id', '=', userId)
    .where('starts_at', '<=', now)
    .where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', now)]))
    .executeTakeFirst();
  return row !== undefined;
}

/** A trigger refusal (SQLSTATE 23P01) as the kind of conflict it names, or undefined. */
export function overlapKind(e: unknown): 'clinician' | 'room' | undefined {
  const err = e as { code?: unknown; constraint?: unknown };
  if (err?.code !== '23P01') {
    return undefined;
  }
  return err.constraint === 'appointments_room_overlap' ? 'room' : 'clinician';
}
