import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import { CustosError } from '../errors.ts';
import type { Slot } from '../scheduling/conflicts.ts';
import {
  BookInput,
  CancelInput,
  NoShowInput,
  parse,
  RescheduleInput,
  SeriesInput,
  slotOf,
} from '../scheduling/inputs.ts';
import { weeklyOccurrences } from '../scheduling/recurrence.ts';
import { schedulingSettings } from '../scheduling/settings.ts';
import {
  APPOINTMENTS,
  type AppointmentChange,
  type AppointmentView,
  appointmentFacts,
  appointmentFields,
  assertClinician,
  type Changed,
  changeOf,
  hoursOf,
  openReason,
  reasonAt,
  sealText,
  seesReason,
  viewOf,
} from './appointments.access.ts';
import {
  assertMayWriteReason,
  checkSlots,
  ensureOnTeam,
  guarded,
  placeBookings,
} from './appointments.booking.ts';
import * as astore from './appointments.store.ts';
import type * as store from './chart.store.ts';
import { asCore, type GateCore } from './gate-core.ts';

/**
 * Appointments through the gate (issue 6 item 5). An appointment is health data (that a patient
 * sees a clinician), kept like a clinical record: the patient's pseudonym, never the patient id;
 * the reason for the visit sealed with the patient's data key. The policy decides per patient in
 * the `appointments` section: front desk books and sees appointments without the reason, billing
 * and clinicians off the care team see none. Every call is one audit entry (ids and pseudonyms
 * only, never times or reasons); a denial is the 404 of a missing id.
 *
 * What a caller sees and how an appointment is reached: appointments.access.ts; placing bookings
 * and checking conflicts: appointments.booking.ts.
 */

export type { AppointmentChange, AppointmentView, Changed };

/** Books one appointment. */
export async function book(g: GateCore, ctx: AccessContext, input: unknown): Promise<Changed> {
  return g.call(ctx, { action: 'create', resourceType: 'appointment' }, async (tx, t, keys) => {
    const b = parse(BookInput, input);
    const slot = slotOf(b, g.clock());
    const p = await g.patientFacts(tx, ctx, t, b.patientId, 'write', APPOINTMENTS);
    const [row] = await placeBookings(g, tx, ctx, t, keys, p, {
      clinicianId: b.clinicianId,
      slots: [slot],
      room: b.room,
      reason: b.reason,
    });
    const r = row as astore.AppointmentRow;
    t.resourceId = r.id;
    const fields = appointmentFields(g, ctx, p.facts) ?? [];
    return () => ({
      appointment: viewOf(r, p.id, fields, seesReason(fields) ? (b.reason ?? null) : null),
      change: changeOf(r, p.id),
    });
  });
}

/**
 * Books a weekly series (same weekday and local time, `count` occurrences or `until`): all or
 * nothing; the conflicts of every occurrence are reported at once.
 */
export async function bookSeries(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
): Promise<{ seriesId: string; appointments: AppointmentView[]; changes: AppointmentChange[] }> {
  return g.call(ctx, { action: 'create', resourceType: 'appointment-series' }, async (tx, t, keys) => {
    const b = parse(SeriesInput, input);
    const first = slotOf(b, g.clock());
    const p = await g.patientFacts(tx, ctx, t, b.patientId, 'write', APPOINTMENTS);
    const { timeZone } = await schedulingSettings(asCore(tx), ctx.practiceId);
    const slots = weeklyOccurrences({
      start: first.start,
      end: first.end,
      timeZone,
      ...(b.count !== undefined ? { count: b.count } : {}),
      ...(b.until !== undefined ? { until: new Date(b.until) } : {}),
      ...(b.everyWeeks !== undefined ? { everyWeeks: b.everyWeeks } : {}),
    });
    const seriesId = randomUUID();
    t.resourceId = seriesId;
    const rows = await placeBookings(g, tx, ctx, t, keys, p, {
      clinicianId: b.clinicianId,
      slots,
      room: b.room,
      reason: b.reason,
      seriesId,
    });
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    const fields = appointmentFields(g, ctx, p.facts) ?? [];
    const reason = seesReason(fields) ? (b.reason ?? null) : null;
    return () => ({
      seriesId,
      appointments: rows.map((r) => viewOf(r, p.id, fields, reason)),
      changes: rows.map((r) => changeOf(r, p.id)),
    });
  });
}

function assertVersion(row: astore.AppointmentRow, expected: number | undefined): void {
  if (expected !== undefined && row.version !== expected) {
    throw new CustosError('CUSTOS_ERR_VERSION_CONFLICT', `appointment was changed since version ${expected}`);
  }
}

function assertBooked(row: astore.AppointmentRow, what: string): void {
  if (row.status !== 'booked') {
    throw new CustosError(
      'CUSTOS_ERR_CONFLICT',
      `only a booked appointment is ${what} (this one is ${row.status})`,
    );
  }
}

/** Writes the next version of an appointment if it is still at `row.version` (412 otherwise). */
async function writeNext(
  tx: store.Tx,
  row: astore.AppointmentRow,
  set: Partial<astore.AppointmentRow>,
  by: string,
  now: Date,
): Promise<astore.AppointmentRow> {
  const next = { ...row, ...set, version: row.version + 1, updated_at: now, updated_by: by };
  const r = await tx
    .updateTable('appointments')
    .set({ ...set, version: next.version, updated_at: now, updated_by: by })
    .where('id', '=', row.id)
    .where('version', '=', row.version)
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) === 0) {
    throw new CustosError(
      'CUSTOS_ERR_VERSION_CONFLICT',
      `appointment was changed since version ${row.version}`,
    );
  }
  return next;
}

/**
 * Moves a booked appointment (new time, and optionally clinician or room) if it is still at
 * `expectedVersion` (412 otherwise); its reminder is due again for the new time.
 */
export async function reschedule(
  g: GateCore,
  ctx: AccessContext,
  id: string,
  input: unknown,
): Promise<Changed> {
  return g.call(
    ctx,
    { action: 'update', resourceType: 'appointment', resourceId: id },
    async (tx, t, keys) => {
      const a = await appointmentFacts(g, tx, ctx, t, id, 'write', true);
      const b = parse(RescheduleInput, input);
      assertVersion(a.row, b.expectedVersion);
      assertBooked(a.row, 'rescheduled');
      const slot = slotOf(b, g.clock());
      const clinicianId = b.clinicianId ?? a.row.clinician_id;
      if (clinicianId !== a.row.clinician_id) {
        await assertClinician(tx, ctx, clinicianId, 'clinicianId');
        await ensureOnTeam(g, tx, ctx, t, { id: a.patientId, facts: a.facts }, clinicianId, 'clinicianId');
      }
      assertMayWriteReason(a.fields, b.reason !== undefined, 'reason');
      const hours = await hoursOf(tx, ctx, clinicianId);
      const asked = b.room === undefined ? (b.clinicianId === undefined ? a.row.room : undefined) : b.room;
      const [planned] = await checkSlots(tx, ctx, clinicianId, [slot], asked, hours, a.row.id);
      const s = planned as Slot;
      const sealed =
        b.reason === undefined ? undefined : await sealText(g, tx, keys, a.link, reasonAt(id), b.reason);
      const next = await guarded(s, () =>
        writeNext(
          tx,
          a.row,
          {
            starts_at: s.start,
            ends_at: s.end,
            clinician_id: clinicianId,
            room: s.room,
            reminder_sent_at: null,
            ...(sealed ? { reason: sealed } : {}),
          },
          ctx.actor.id,
          g.clock(),
        ),
      );
      const reasonOf = seesReason(a.fields) ? await openReason(g, tx, keys, a.link, [next]) : () => null;
      t.detail = { ...(t.detail ?? {}), version: next.version, clinicianId };
      return () => ({
        appointment: viewOf(next, a.patientId, a.fields, reasonOf(next)),
        change: changeOf(next, a.patientId),
      });
    },
  );
}

/** Cancels a booked appointment with a reason code (never free text: codes only). */
export async function cancel(g: GateCore, ctx: AccessContext, id: string, input: unknown): Promise<Changed> {
  return g.call(ctx, { action: 'update', resourceType: 'appointment', resourceId: id }, async (tx, t) => {
    const a = await appointmentFacts(g, tx, ctx, t, id, 'write', true);
    const b = parse(CancelInput, input);
    assertVersion(a.row, b.expectedVersion);
    assertBooked(a.row, 'cancelled');
    const next = await writeNext(
      tx,
      a.row,
      { status: 'cancelled', cancel_code: b.reasonCode },
      ctx.actor.id,
      g.clock(),
    );
    t.detail = { ...(t.detail ?? {}), status: 'cancelled', code: b.reasonCode, version: next.version };
    return () => ({
      appointment: viewOf(next, a.patientId, a.fields, null),
      change: changeOf(next, a.patientId),
    });
  });
}

/** Marks a booked appointment that has started without the patient as a no-show. */
export async function markNoShow(
  g: GateCore,
  ctx: AccessContext,
  id: string,
  input: unknown,
): Promise<Changed> {
  return g.call(ctx, { action: 'update', resourceType: 'appointment', resourceId: id }, async (tx, t) => {
    const a = await appointmentFacts(g, tx, ctx, t, id, 'write', true);
    const b = parse(NoShowInput, input ?? {});
    assertVersion(a.row, b.expectedVersion);
    assertBooked(a.row, 'marked a no-show');
    const now = g.clock();
    if (a.row.starts_at.getTime() > now.getTime()) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'an appointment that has not started is not a no-show');
    }
    const next = await writeNext(tx, a.row, { status: 'no-show' }, ctx.actor.id, now);
    t.detail = { ...(t.detail ?? {}), status: 'no-show', version: next.version };
    return () => ({
      appointment: viewOf(next, a.patientId, a.fields, null),
      change: changeOf(next, a.patientId),
    });
  });
}

/** A patient's appointments (optionally within [from, to)), oldest first. */
export async function listForPatient(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  range: { from?: Date | undefined; to?: Date | undefined } = {},
): Promise<AppointmentView[]> {
  return g.call(ctx, { action: 'list', resourceType: 'appointment' }, async (tx, t, keys) => {
    const p = await g.patientFacts(tx, ctx, t, patientId, 'read', APPOINTMENTS);
    const fields = p.decision.view.appointments ?? [];
    const rows = await astore.patientAppointments(tx, {
      practiceId: ctx.practiceId,
      pseudonym: p.link.pseudonym,
      from: range.from,
      to: range.to,
    });
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    const reasonOf = seesReason(fields) ? await openReason(g, tx, keys, p.link, rows) : () => null;
    return () => rows.map((r) => viewOf(r, p.id, fields, reasonOf(r)));
  });
}
