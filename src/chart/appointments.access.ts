import type { AccessContext } from '../access/context.ts';
import { ALL, type Fields } from '../access/grants.ts';
import { type PatientFacts, project, type Resource } from '../access/policy.ts';
import { type Binding, seal } from '../crypto/envelope.ts';
import { validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import type { WorkingHours } from '../scheduling/hours.ts';
import { isBookable } from '../scheduling/permissions.ts';
import { schedulingSettings } from '../scheduling/settings.ts';
import * as astore from './appointments.store.ts';
import * as store from './chart.store.ts';
import type { CallKeys, Link } from './cipher.ts';
import { asCore, Denied, type GateCore, type Target } from './gate-core.ts';

/**
 * How an appointment is reached and shown (the gate's scheduling calls share these): its patient
 * through the pseudonym, the policy's decision in the `appointments` section, the fields a role
 * sees (the reason for the visit only for roles that read it), and the reason sealed with the
 * patient's clinical key.
 */

export const APPOINTMENTS: Resource = { kind: 'section', section: 'appointments' };

/** What a caller sees of an appointment: fields by their role (the reason is clinical). */
export interface AppointmentView {
  readonly id: string;
  readonly patientId: string;
  readonly version: number;
  readonly start?: Date;
  readonly end?: Date;
  readonly clinicianId?: string;
  readonly room?: string | null;
  readonly status?: string;
  readonly seriesId?: string | null;
  readonly cancelCode?: string | null;
  readonly reason?: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** What changed, for the appointment events emitted after the commit (ids and times only). */
export interface AppointmentChange {
  readonly appointmentId: string;
  readonly patientId: string;
  readonly clinicianId: string;
  readonly room: string | null;
  readonly start: Date;
  readonly end: Date;
}

export interface Changed {
  readonly appointment: AppointmentView;
  readonly change: AppointmentChange;
}

export const reasonAt = (id: string): Binding => ({
  table: 'appointments',
  column: 'reason',
  row: id,
  version: 0,
});

export const seesReason = (fields: Fields | undefined): boolean =>
  fields === ALL || (fields?.includes('reason') ?? false);

/** The appointment fields the caller reads for a patient, or undefined. */
export function appointmentFields(g: GateCore, ctx: AccessContext, facts: PatientFacts): Fields | undefined {
  const d = g.policy(g.subject(ctx), 'read', APPOINTMENTS, { patient: facts });
  return d.allow ? d.view.appointments : undefined;
}

/** Projects a row to what `fields` shows; `reason` is the decrypted reason when it may be seen. */
export function viewOf(
  row: astore.AppointmentRow,
  patientId: string,
  fields: Fields,
  reason: string | null,
): AppointmentView {
  const full = {
    start: row.starts_at,
    end: row.ends_at,
    clinicianId: row.clinician_id,
    room: row.room,
    status: row.status,
    seriesId: row.series_id,
    cancelCode: row.cancel_code,
    reason,
  };
  return {
    id: row.id,
    patientId,
    version: row.version,
    ...project(full, fields),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export const changeOf = (row: astore.AppointmentRow, patientId: string): AppointmentChange => ({
  appointmentId: row.id,
  patientId,
  clinicianId: row.clinician_id,
  room: row.room,
  start: row.starts_at,
  end: row.ends_at,
});

/** Opens a sealed reason with the patient's clinical key (only for callers who may see it). */
export async function openReason(
  g: GateCore,
  tx: store.Tx,
  keys: CallKeys,
  link: Link,
  rows: readonly astore.AppointmentRow[],
): Promise<(row: astore.AppointmentRow) => string | null> {
  if (!rows.some((r) => r.reason !== null)) {
    return () => null;
  }
  const keyId = link.clinicalKeyId;
  const wrapped = await g.wrappedKey(tx, keyId);
  return (r) => (r.reason === null ? null : keys.openText(keyId, wrapped, reasonAt(r.id), r.reason));
}

/** Seals a reason (or a waiting-list note) with the patient's clinical key. */
export async function sealText(
  g: GateCore,
  tx: store.Tx,
  keys: CallKeys,
  link: Link,
  at: Binding,
  text: string,
): Promise<Buffer> {
  const keyId = link.clinicalKeyId;
  const key = keys.key(keyId, await g.wrappedKey(tx, keyId));
  return seal(key, keyId, at, Buffer.from(text, 'utf8'));
}

/** An appointment, its patient and the policy's decision on the caller's action. */
export async function appointmentFacts(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  t: Target,
  id: string,
  action: 'read' | 'write',
  forUpdate = false,
) {
  if (!isUuid(id)) {
    t.resourceId = id.slice(0, 64);
    throw new Denied('not-found');
  }
  t.resourceId = id;
  const row = await astore.loadAppointment(tx, ctx.practiceId, id, forUpdate);
  if (!row) {
    throw new Denied('not-found');
  }
  t.patientPseudonym = row.pseudonym;
  const patientId = await store.patientIdForPseudonymIndex(
    tx,
    ctx.practiceId,
    g.keyring.pseudonymIndex(row.pseudonym),
  );
  if (!patientId) {
    throw new Denied('not-found');
  }
  const p = await g.loadPatient(tx, ctx, t, patientId);
  g.decide(ctx, t, action, APPOINTMENTS, p.facts);
  return { row, patientId, link: p.link, facts: p.facts, fields: appointmentFields(g, ctx, p.facts) ?? [] };
}

/** The clinician must be an active clinician or nurse of the practice (else 400 naming `field`). */
export async function assertClinician(tx: store.Tx, ctx: AccessContext, clinicianId: string, field: string) {
  const u = isUuid(clinicianId) ? await astore.loadStaff(tx, ctx.practiceId, clinicianId) : undefined;
  if (u?.status !== 'active' || !isBookable(u.roles)) {
    throw validationError(field, 'must be an active clinician or nurse of this practice');
  }
}

export interface HoursContext {
  readonly hours: readonly WorkingHours[];
  readonly timeZone: string;
}

export async function hoursOf(tx: store.Tx, ctx: AccessContext, clinicianId: string): Promise<HoursContext> {
  const [settings, hours] = await Promise.all([
    schedulingSettings(asCore(tx), ctx.practiceId),
    astore.loadHours(tx, clinicianId),
  ]);
  return { hours, timeZone: settings.timeZone };
}
