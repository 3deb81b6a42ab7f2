import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import type { PatientFacts, View } from '../access/policy.ts';
import { validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { type Availability, freeTime } from '../scheduling/availability.ts';
import { parseWorkingHours, type WorkingHours } from '../scheduling/hours.ts';
import { AvailabilityInput, parse, RangeInput, rangeOf } from '../scheduling/inputs.ts';
import { isBookable, mayKeepHours, maySchedule } from '../scheduling/permissions.ts';
import { schedulingSettings } from '../scheduling/settings.ts';
import {
  APPOINTMENTS,
  type AppointmentView,
  assertClinician,
  openReason,
  seesReason,
  viewOf,
} from './appointments.access.ts';
import * as astore from './appointments.store.ts';
import * as store from './chart.store.ts';
import type { CallKeys, Link } from './cipher.ts';
import { asCore, Denied, type GateCore, openPatient, projectIdentity, type Target } from './gate-core.ts';

/**
 * Schedules through the gate: clinicians' working hours, free time, and a clinician's calendar.
 * Working hours and free time hold no patient data (who may keep or see them is decided in
 * `src/scheduling/permissions.ts`); a calendar shows each patient's appointment, name and phone
 * only as far as the policy lets the caller see that patient, and the other slots as busy time.
 */

/** A bookable clinician of the practice, or "not found" (the 404 of a denial). */
async function clinicianOr404(
  tx: store.Tx,
  ctx: AccessContext,
  t: Target,
  clinicianId: string,
): Promise<void> {
  if (!isUuid(clinicianId)) {
    t.resourceId = clinicianId.slice(0, 64);
    throw new Denied('not-found');
  }
  t.resourceId = clinicianId;
  const u = await astore.loadStaff(tx, ctx.practiceId, clinicianId);
  if (u?.status !== 'active' || !isBookable(u.roles)) {
    throw new Denied('not-found');
  }
}

export interface HoursView {
  readonly clinicianId: string;
  readonly timeZone: string;
  readonly hours: readonly WorkingHours[];
}

/** A clinician's working hours: the clinician, the administrator, front desk. */
export async function readHours(g: GateCore, ctx: AccessContext, clinicianId: string): Promise<HoursView> {
  return g.call(ctx, { action: 'read', resourceType: 'working-hours' }, async (tx, t) => {
    await clinicianOr404(tx, ctx, t, clinicianId);
    if (!mayKeepHours(g.subject(ctx), clinicianId)) {
      throw new Denied('no-grant');
    }
    const [hours, settings] = await Promise.all([
      astore.loadHours(tx, clinicianId),
      schedulingSettings(asCore(tx), ctx.practiceId),
    ]);
    return () => ({ clinicianId, timeZone: settings.timeZone, hours });
  });
}

/** Replaces a clinician's week of working hours (local times in the practice's zone). */
export async function setHours(
  g: GateCore,
  ctx: AccessContext,
  clinicianId: string,
  input: unknown,
): Promise<HoursView> {
  return g.call(ctx, { action: 'update', resourceType: 'working-hours' }, async (tx, t) => {
    await clinicianOr404(tx, ctx, t, clinicianId);
    if (!mayKeepHours(g.subject(ctx), clinicianId)) {
      throw new Denied('no-grant');
    }
    const hours = parseWorkingHours(input);
    await astore.replaceHours(
      tx,
      { practiceId: ctx.practiceId, clinicianId, hours, by: ctx.actor.id, now: g.clock() },
      randomUUID,
    );
    t.detail = { ...(t.detail ?? {}), entries: hours.length };
    const { timeZone } = await schedulingSettings(asCore(tx), ctx.practiceId);
    return () => ({ clinicianId, timeZone, hours });
  });
}

/**
 * A clinician's free time over a range (and bookable slots of a length): working hours minus
 * every occupying appointment, whoever the patient; times only, no patient data.
 */
export async function availability(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
): Promise<Availability & { clinicianId: string; timeZone: string; hoursSet: boolean }> {
  return g.call(ctx, { action: 'read', resourceType: 'availability' }, async (tx, t) => {
    if (!maySchedule(g.subject(ctx))) {
      throw new Denied('no-grant');
    }
    const b = parse(AvailabilityInput, input);
    const range = rangeOf(b);
    await assertClinician(tx, ctx, b.clinicianId, 'clinicianId');
    t.resourceId = b.clinicianId;
    const [hours, settings, busy] = await Promise.all([
      astore.loadHours(tx, b.clinicianId),
      schedulingSettings(asCore(tx), ctx.practiceId),
      astore.occupying(tx, {
        practiceId: ctx.practiceId,
        clinicianId: b.clinicianId,
        rooms: [],
        from: range.start,
        to: range.end,
      }),
    ]);
    const free = freeTime({
      hours,
      busy: busy.filter((a) => a.clinicianId === b.clinicianId),
      from: range.start,
      to: range.end,
      timeZone: settings.timeZone,
      notBefore: g.clock(),
      ...(b.slotMinutes !== undefined ? { slotMinutes: b.slotMinutes } : {}),
      ...(b.stepMinutes !== undefined ? { stepMinutes: b.stepMinutes } : {}),
    });
    return () => ({
      clinicianId: b.clinicianId,
      timeZone: settings.timeZone,
      hoursSet: hours.length > 0,
      ...free,
    });
  });
}

/** A patient as a calendar or waiting list shows them: the identity fields the caller may see. */
export interface PatientSummary {
  readonly id: string;
  readonly name?: { readonly given: readonly string[]; readonly family: string; readonly preferred?: string };
  readonly phone?: string;
  readonly email?: string;
}

export interface CalendarEntry {
  readonly start: Date;
  readonly end: Date;
  readonly room: string | null;
  /** The appointment's status, or `busy` for an appointment of a patient the caller may not see. */
  readonly status: string;
  readonly appointment?: AppointmentView;
  readonly patient?: PatientSummary;
}

/** Per patient of a list: facts, and what the caller may see of their appointments and identity. */
export interface Visible {
  readonly patientId: string;
  readonly link: Link;
  readonly fields: NonNullable<View['appointments']>;
  readonly identityView: View | null;
  /** The patient is flagged restricted (the list's audit entry says so, for the anomaly report). */
  readonly restricted: boolean;
}

/**
 * Decides, for each pseudonym of a list (calendar, waiting list), whether the caller may see that
 * patient's appointments, and which identity fields; nothing is decrypted here but the links.
 */
export async function visibleByPseudonym(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  pseudonyms: readonly string[],
): Promise<Map<string, Visible>> {
  const out = new Map<string, Visible>();
  const subject = g.subject(ctx);
  for (const pseudonym of new Set(pseudonyms)) {
    const patientId = await store.patientIdForPseudonymIndex(
      tx,
      ctx.practiceId,
      g.keyring.pseudonymIndex(pseudonym),
    );
    const f = patientId
      ? await store.loadPatientFacts(tx, {
          practiceId: ctx.practiceId,
          patientId,
          actorId: ctx.actor.id,
          now: g.clock(),
        })
      : undefined;
    if (!f) {
      continue;
    }
    const facts: PatientFacts = g.factsOf(ctx, f);
    const d = g.policy(subject, 'read', APPOINTMENTS, { patient: facts });
    const fields = d.allow ? d.view.appointments : undefined;
    if (!d.allow || fields === undefined) {
      continue;
    }
    const id = g.policy(subject, 'read', { kind: 'patient' }, { patient: facts });
    out.set(pseudonym, {
      patientId: f.id,
      link: g.link(f.link, f.id),
      fields,
      identityView: id.allow ? id.view : null,
      restricted: d.restricted,
    });
  }
  return out;
}

/**
 * The identities of the visible patients who may be named, read in the transaction; decrypted by
 * the returned function (call it only after the audit entry is written).
 */
export async function summaries(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  visible: Iterable<Visible>,
  keys: CallKeys,
): Promise<() => Map<string, PatientSummary>> {
  const named = [...visible].filter((v) => v.identityView !== null);
  const heads = await store.loadPatientHeads(tx, {
    practiceId: ctx.practiceId,
    patientIds: named.map((v) => v.patientId),
    actorId: ctx.actor.id,
    now: g.clock(),
  });
  const views = new Map(named.map((v) => [v.patientId, v.identityView as View]));
  return () => {
    const out = new Map<string, PatientSummary>();
    for (const h of heads) {
      const identity = projectIdentity(openPatient(keys, h).identity, views.get(h.id) ?? {});
      out.set(h.id, {
        id: h.id,
        ...(identity.name ? { name: identity.name } : {}),
        ...(identity.phone ? { phone: identity.phone } : {}),
        ...(identity.email ? { email: identity.email } : {}),
      });
    }
    return out;
  };
}

/**
 * A clinician's calendar over a range (default: the caller's own): every appointment but the
 * cancelled ones; for each patient the caller may see, the appointment (the reason only for roles
 * that read it) and the patient's name and contact as their role shows them; the rest as busy.
 * One audit entry naming every patient shown.
 */
export async function calendar(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
): Promise<{ clinicianId: string; timeZone: string; entries: CalendarEntry[] }> {
  return g.call(ctx, { action: 'list', resourceType: 'calendar' }, async (tx, t, keys) => {
    const subject = g.subject(ctx);
    if (!maySchedule(subject)) {
      throw new Denied('no-grant');
    }
    const b = parse(RangeInput, input);
    const range = rangeOf(b);
    const clinicianId = b.clinicianId ?? (isBookable(subject.roles) ? ctx.actor.id : undefined);
    if (clinicianId === undefined) {
      throw validationError('clinicianId', 'is required (the caller is not a clinician)');
    }
    await assertClinician(tx, ctx, clinicianId, 'clinicianId');
    t.resourceId = clinicianId;
    const rows = await astore.clinicianAppointments(tx, {
      practiceId: ctx.practiceId,
      clinicianId,
      from: range.start,
      to: range.end,
    });
    const visible = await visibleByPseudonym(
      g,
      tx,
      ctx,
      rows.map((r) => r.pseudonym),
    );
    const names = await summaries(g, tx, ctx, visible.values(), keys);
    const reasons = new Map<string, (r: astore.AppointmentRow) => string | null>();
    for (const [pseudonym, v] of visible) {
      if (seesReason(v.fields)) {
        reasons.set(
          pseudonym,
          await openReason(
            g,
            tx,
            keys,
            v.link,
            rows.filter((r) => r.pseudonym === pseudonym),
          ),
        );
      }
    }
    const { timeZone } = await schedulingSettings(asCore(tx), ctx.practiceId);
    t.detail = {
      ...(t.detail ?? {}),
      count: rows.length,
      pseudonyms: [...visible.keys()],
      ...([...visible.values()].some((v) => v.restricted) ? { restrictedPatient: true } : {}),
    };
    return () => {
      const patients = names();
      return {
        clinicianId,
        timeZone,
        entries: rows.map((r): CalendarEntry => {
          const v = visible.get(r.pseudonym);
          if (!v) {
            return { start: r.starts_at, end: r.ends_at, room: r.room, status: 'busy' };
          }
          const patient = patients.get(v.patientId) ?? { id: v.patientId };
          return {
            start: r.starts_at,
            end: r.ends_at,
            room: r.room,
            status: r.status,
            appointment: viewOf(r, v.patientId, v.fields, reasons.get(r.pseudonym)?.(r) ?? null),
            patient,
          };
        }),
      };
    };
  });
}
