import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import type { Binding } from '../crypto/envelope.ts';
import { CustosError, validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import { MatchInput, OfferInput, type Preferred, parse, slotOf, WaitingInput } from '../scheduling/inputs.ts';
import { maySchedule } from '../scheduling/permissions.ts';
import { schedulingSettings } from '../scheduling/settings.ts';
import { minutesOf } from '../scheduling/time.ts';
import { suits } from '../scheduling/waiting.ts';
import {
  APPOINTMENTS,
  appointmentFields,
  assertClinician,
  type Changed,
  changeOf,
  sealText,
  seesReason,
  viewOf,
} from './appointments.access.ts';
import { placeBookings } from './appointments.booking.ts';
import * as store from './chart.store.ts';
import { asCore, Denied, type GateCore, type Target } from './gate-core.ts';
import { type PatientSummary, summaries, visibleByPseudonym } from './schedule.service.ts';
import type { ChartTables } from './tables.ts';

/**
 * The waiting list through the gate: patients (by pseudonym) waiting for a slot with a clinician
 * or any, with preferred weekdays and times, and a note sealed like the reason for a visit. A
 * freed slot is matched against it and offered: booking it for the entry's patient closes the
 * entry, in one transaction.
 */

type EntryRow = Selectable<ChartTables['waiting_list_entries']>;

const noteAt = (id: string): Binding => ({
  table: 'waiting_list_entries',
  column: 'note',
  row: id,
  version: 0,
});

export interface WaitingEntry {
  readonly id: string;
  readonly patientId: string;
  /** Null: any clinician. */
  readonly clinicianId: string | null;
  readonly preferred: Preferred;
  readonly status: string;
  /** Only for roles that read the reason for a visit. */
  readonly note?: string | null;
  readonly appointmentId: string | null;
  readonly createdAt: Date;
  readonly patient?: PatientSummary;
}

function entryView(r: EntryRow, patientId: string, note: string | null | undefined): WaitingEntry {
  return {
    id: r.id,
    patientId,
    clinicianId: r.clinician_id,
    preferred: (r.preferred ?? {}) as Preferred,
    status: r.status,
    ...(note !== undefined ? { note } : {}),
    appointmentId: r.appointment_id,
    createdAt: r.created_at,
  };
}

function checkPreferred(p: Preferred | undefined): void {
  if (p?.from !== undefined && p.to !== undefined && minutesOf(p.to) <= minutesOf(p.from)) {
    throw validationError('preferred.to', 'must be after preferred.from');
  }
}

/** Puts a patient on the waiting list. */
export async function addEntry(g: GateCore, ctx: AccessContext, input: unknown): Promise<WaitingEntry> {
  return g.call(ctx, { action: 'create', resourceType: 'waiting-list' }, async (tx, t, keys) => {
    const b = parse(WaitingInput, input);
    checkPreferred(b.preferred);
    const p = await g.patientFacts(tx, ctx, t, b.patientId, 'write', APPOINTMENTS);
    if (b.clinicianId !== undefined) {
      await assertClinician(tx, ctx, b.clinicianId, 'clinicianId');
    }
    const fields = appointmentFields(g, ctx, p.facts);
    if (b.note !== undefined && !seesReason(fields)) {
      throw validationError('note', "is clinical; the caller's role does not record it");
    }
    const id = randomUUID();
    const now = g.clock();
    const row: EntryRow = {
      id,
      practice_id: ctx.practiceId,
      pseudonym: p.link.pseudonym,
      clinician_id: b.clinicianId ?? null,
      note: b.note === undefined ? null : await sealText(g, tx, keys, p.link, noteAt(id), b.note),
      preferred: b.preferred ?? {},
      status: 'waiting',
      appointment_id: null,
      created_at: now,
      created_by: ctx.actor.id,
      updated_at: now,
      updated_by: ctx.actor.id,
    };
    await tx
      .insertInto('waiting_list_entries')
      .values({ ...row, preferred: JSON.stringify(row.preferred) })
      .execute();
    t.resourceId = id;
    return () => entryView(row, p.id, seesReason(fields) ? (b.note ?? null) : undefined);
  });
}

/** The waiting entries the caller may see (optionally those suiting a freed slot), oldest first. */
async function listEntries(
  g: GateCore,
  ctx: AccessContext,
  filterOf: () => { clinicianId?: string; slot?: { start: Date; end: Date; clinicianId: string } },
): Promise<WaitingEntry[]> {
  return g.call(ctx, { action: 'list', resourceType: 'waiting-list' }, async (tx, t, keys) => {
    if (!maySchedule(g.subject(ctx))) {
      throw new Denied('no-grant');
    }
    const filter = filterOf();
    const clinicianId = filter.slot?.clinicianId ?? filter.clinicianId;
    let q = tx
      .selectFrom('waiting_list_entries')
      .selectAll()
      .where('practice_id', '=', ctx.practiceId)
      .where('status', '=', 'waiting');
    if (clinicianId !== undefined) {
      q = q.where((eb) => eb.or([eb('clinician_id', 'is', null), eb('clinician_id', '=', clinicianId)]));
    }
    let rows = await q.orderBy('created_at').orderBy('id').execute();
    if (filter.slot) {
      const slot = filter.slot;
      const { timeZone } = await schedulingSettings(asCore(tx), ctx.practiceId);
      rows = rows.filter((r) =>
        suits({ clinicianId: r.clinician_id, preferred: (r.preferred ?? {}) as Preferred }, slot, timeZone),
      );
    }
    const visible = await visibleByPseudonym(
      g,
      tx,
      ctx,
      rows.map((r) => r.pseudonym),
    );
    const shown = rows.filter((r) => visible.has(r.pseudonym));
    const names = await summaries(g, tx, ctx, visible.values(), keys);
    const wrapped = new Map<string, Buffer>();
    for (const v of visible.values()) {
      if (seesReason(v.fields) && shown.some((r) => r.note !== null && visible.get(r.pseudonym) === v)) {
        wrapped.set(v.link.clinicalKeyId, await g.wrappedKey(tx, v.link.clinicalKeyId));
      }
    }
    t.detail = {
      ...(t.detail ?? {}),
      count: shown.length,
      pseudonyms: [...new Set(shown.map((r) => r.pseudonym))],
      ...([...visible.values()].some((v) => v.restricted) ? { restrictedPatient: true } : {}),
    };
    return () => {
      const patients = names();
      return shown.map((r) => {
        const v = visible.get(r.pseudonym);
        if (!v) {
          throw new Error('unreachable: only visible entries are shown');
        }
        const keyId = v.link.clinicalKeyId;
        const w = wrapped.get(keyId);
        const note = seesReason(v.fields)
          ? r.note !== null && w
            ? keys.openText(keyId, w, noteAt(r.id), r.note)
            : null
          : undefined;
        return {
          ...entryView(r, v.patientId, note),
          patient: patients.get(v.patientId) ?? { id: v.patientId },
        };
      });
    };
  });
}

/** The waiting list (optionally for one clinician: theirs and "any"). */
export function listWaiting(g: GateCore, ctx: AccessContext, clinicianId?: string): Promise<WaitingEntry[]> {
  return listEntries(g, ctx, () => {
    if (clinicianId !== undefined && !isUuid(clinicianId)) {
      throw validationError('clinicianId', 'must be a user id');
    }
    return clinicianId === undefined ? {} : { clinicianId };
  });
}

/** The waiting entries a freed slot suits (clinician, preferred weekdays and times), oldest first. */
export function matchWaiting(g: GateCore, ctx: AccessContext, input: unknown): Promise<WaitingEntry[]> {
  return listEntries(g, ctx, () => {
    const b = parse(MatchInput, input);
    const start = new Date(b.start);
    const end = new Date(b.end);
    if (end.getTime() <= start.getTime()) {
      throw validationError('end', 'must be after start');
    }
    return { slot: { start, end, clinicianId: b.clinicianId } };
  });
}

/** A waiting entry, its patient, and the decision on writing the patient's appointments. */
async function entryFacts(g: GateCore, tx: store.Tx, ctx: AccessContext, t: Target, id: string) {
  if (!isUuid(id)) {
    t.resourceId = id.slice(0, 64);
    throw new Denied('not-found');
  }
  t.resourceId = id;
  const row = await tx
    .selectFrom('waiting_list_entries')
    .selectAll()
    .where('practice_id', '=', ctx.practiceId)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
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
  g.decide(ctx, t, 'write', APPOINTMENTS, p.facts);
  if (row.status !== 'waiting') {
    throw new CustosError('CUSTOS_ERR_CONFLICT', `this waiting-list entry is ${row.status} already`);
  }
  return { row, patient: { id: p.id, link: p.link, facts: p.facts } };
}

/** Takes a patient off the waiting list. */
export async function removeEntry(g: GateCore, ctx: AccessContext, id: string): Promise<void> {
  return g.call(ctx, { action: 'delete', resourceType: 'waiting-list', resourceId: id }, async (tx, t) => {
    await entryFacts(g, tx, ctx, t, id);
    await tx
      .updateTable('waiting_list_entries')
      .set({ status: 'removed', updated_at: g.clock(), updated_by: ctx.actor.id })
      .where('id', '=', id)
      .execute();
    return () => undefined;
  });
}

/**
 * Offers a freed slot to a waiting patient: books it for them (the entry's clinician unless
 * another is named) and closes the entry, all or nothing.
 */
export async function offerSlot(
  g: GateCore,
  ctx: AccessContext,
  id: string,
  input: unknown,
): Promise<Changed> {
  return g.call(ctx, { action: 'create', resourceType: 'appointment' }, async (tx, t, keys) => {
    const e = await entryFacts(g, tx, ctx, t, id);
    const b = parse(OfferInput, input);
    const clinicianId = b.clinicianId ?? e.row.clinician_id;
    if (clinicianId === null) {
      throw validationError('clinicianId', 'is required: the entry is for any clinician');
    }
    const slot = slotOf(b, g.clock());
    const [row] = await placeBookings(g, tx, ctx, t, keys, e.patient, {
      clinicianId,
      slots: [slot],
      room: b.room,
    });
    if (!row) {
      throw new Error('unreachable: one slot books one appointment');
    }
    await tx
      .updateTable('waiting_list_entries')
      .set({ status: 'booked', appointment_id: row.id, updated_at: g.clock(), updated_by: ctx.actor.id })
      .where('id', '=', id)
      .execute();
    t.resourceId = row.id;
    t.detail = { ...(t.detail ?? {}), waitingListEntry: id };
    const fields = appointmentFields(g, ctx, e.patient.facts) ?? [];
    return () => ({
      appointment: viewOf(row, e.patient.id, fields, null),
      change: changeOf(row, e.patient.id),
    });
  });
}
