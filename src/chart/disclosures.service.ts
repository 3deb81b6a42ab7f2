import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import type { PatientFacts } from '../access/policy.ts';
import { validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import { sealJson } from './cipher.ts';
import { Denied, type GateCore, openPatient, type PatientAccess, type Target } from './gate-core.ts';

/**
 * The accounting of disclosures (HIPAA 45 CFR 164.528; ONC 170.315(d)(11)): every time patient
 * data leaves the practice for a third party, one row says to whom, why, when, and what was sent.
 * The row carries the patient's pseudonym; what was sent (field names and values) is sealed with
 * the patient's data key, so destroying that key erases it too.
 *
 * Recording is itself the gate call that reads what is disclosed: the read, the disclosure row
 * and the audit entry (`disclose`, with the field names, never the values) commit together, and
 * the values leave the gate only after that. Listing is an audited read for the privacy officer
 * and for those who answer the patient's right of access (see `listDisclosures`).
 */

/** What a disclosure may read through the gate, by the name the recipient receives it under. */
export const DISCLOSURE_READS = ['patientName', 'patientEmail', 'patientPhone', 'clinicianName'] as const;
export type DisclosureRead = (typeof DISCLOSURE_READS)[number];

export interface DisclosureInput {
  /** Who receives it: an integration (its id) or another named recipient. */
  readonly recipient: { readonly id: string | null; readonly name: string };
  /** Why, in a few words (shown in the accounting as entered; never health data). */
  readonly purpose: string;
  /** What happened that is disclosed, e.g. `appointment.booked`. */
  readonly event: string;
  /** The webhook delivery that carries it, if any. */
  readonly deliveryId?: string;
  /** Values the caller already holds (time slot, opaque ids, room), by the name they are sent under. */
  readonly values: Readonly<Record<string, string | null>>;
  /** Values to read through the gate for this disclosure. */
  readonly read: readonly DisclosureRead[];
  /** The staff member behind `clinicianName`. */
  readonly clinicianId?: string;
}

export interface Disclosure {
  readonly id: string;
  readonly disclosedAt: Date;
  /** The actor that disclosed (`system` for webhooks, with the integration's creator as on-behalf-of in the audit). */
  readonly disclosedBy: string;
  readonly recipient: { readonly id: string | null; readonly name: string };
  readonly purpose: string;
  readonly event: string;
  /** Exactly what was sent: field name -> value. */
  readonly fields: Readonly<Record<string, string | null>>;
  readonly deliveryId: string | null;
}

interface Description {
  readonly event: string;
  readonly fields: Record<string, string | null>;
}

export const disclosureAt = (id: string) => ({
  table: 'disclosures',
  column: 'description',
  row: id,
  version: 0,
});

/**
 * Reads what `input.read` names, records the disclosure of it together with `input.values`, and
 * returns every field as sent. The caller must send exactly what this returns.
 */
export async function recordDisclosure(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  input: DisclosureInput,
): Promise<{ id: string; fields: Record<string, string | null> }> {
  return g.call(ctx, { action: 'disclose', resourceType: 'disclosure' }, async (tx, t, keys) => {
    if (input.recipient.name.trim() === '' || input.purpose.trim() === '') {
      throw validationError(input.purpose.trim() === '' ? 'purpose' : 'recipient.name', 'must not be empty');
    }
    // A disclosure is about the patient's appointments; names and contact details need their sections.
    const p = await g.patientFacts(tx, ctx, t, patientId, 'read', {
      kind: 'section',
      section: 'appointments',
    });
    const fields: Record<string, string | null> = { ...input.values };
    const wantsIdentity = input.read.some((r) => r !== 'clinicianName');
    if (input.read.includes('patientName')) {
      g.decide(ctx, t, 'read', { kind: 'section', section: 'demographics' }, p.facts);
    }
    if (input.read.includes('patientEmail') || input.read.includes('patientPhone')) {
      g.decide(ctx, t, 'read', { kind: 'section', section: 'contact' }, p.facts);
    }
    if (wantsIdentity) {
      Object.assign(fields, await readIdentity(g, tx, ctx, keys, p, input.read));
    }
    if (input.read.includes('clinicianName')) {
      fields.clinicianName = await staffName(tx, ctx.practiceId, input.clinicianId);
    }
    const id = randomUUID();
    const now = g.clock();
    const keyId = p.link.clinicalKeyId;
    const key = keys.key(keyId, await g.wrappedKey(tx, keyId));
    const description: Description = { event: input.event, fields };
    await tx
      .insertInto('disclosures')
      .values({
        id,
        practice_id: ctx.practiceId,
        pseudonym: p.link.pseudonym,
        recipient_id: input.recipient.id,
        recipient_name: input.recipient.name,
        purpose: input.purpose,
        description: sealJson(key, keyId, disclosureAt(id), description),
        delivery_id: input.deliveryId ?? null,
        disclosed_at: now,
        disclosed_by: ctx.actor.id,
      })
      .execute();
    t.resourceId = id;
    // Names of the fields only: the values are health data and stay out of the trail.
    t.detail = {
      ...(t.detail ?? {}),
      recipient: input.recipient.id ?? 'other',
      fields: Object.keys(fields).sort(),
      ...(input.deliveryId ? { delivery: input.deliveryId } : {}),
    };
    return () => ({ id, fields });
  });
}

async function readIdentity(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  keys: Parameters<typeof openPatient>[0],
  p: PatientAccess,
  read: readonly DisclosureRead[],
): Promise<Record<string, string | null>> {
  const [head] = await store.loadPatientHeads(tx, {
    practiceId: ctx.practiceId,
    patientIds: [p.id],
    actorId: ctx.actor.id,
    now: g.clock(),
  });
  if (!head) {
    throw new Denied('not-found');
  }
  const identity = openPatient(keys, head).identity;
  const out: Record<string, string | null> = {};
  if (read.includes('patientName')) {
    out.patientName = [...identity.name.given, identity.name.family].join(' ');
  }
  if (read.includes('patientEmail')) {
    out.patientEmail = identity.email ?? null;
  }
  if (read.includes('patientPhone')) {
    out.patientPhone = identity.phone ?? null;
  }
  return out;
}

/** A staff member's name as the practice shows it: the username (accounts hold no other name). */
async function staffName(
  tx: store.Tx,
  practiceId: string,
  userId: string | undefined,
): Promise<string | null> {
  if (!userId || !isUuid(userId)) {
    return null;
  }
  const u = await tx
    .selectFrom('users')
    .select('username')
    .where('id', '=', userId)
    .where('practice_id', '=', practiceId)
    .executeTakeFirst();
  return u?.username ?? null;
}

/**
 * Who may see a patient's accounting of disclosures: the privacy officer (the `report` grant:
 * answering a patient's request under 164.528 is their task) and those who answer the patient's
 * right of access (the per-patient `export` grant: clinicians and nurses on the care team, and
 * later the patient through the portal). Front desk, billing and the administrator may not.
 */
function decideAccounting(g: GateCore, ctx: AccessContext, t: Target, facts: PatientFacts): void {
  try {
    g.decide(ctx, t, 'report', { kind: 'patient' }, facts);
  } catch (e) {
    if (!(e instanceof Denied)) {
      throw e;
    }
    g.decide(ctx, t, 'export', { kind: 'patient' }, facts);
  }
}

/** A patient's accounting of disclosures, oldest first. One audit entry (`list`, `disclosure`). */
export async function listDisclosures(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
): Promise<Disclosure[]> {
  return g.call(ctx, { action: 'list', resourceType: 'disclosure' }, async (tx, t, keys) => {
    // Facts first (the entry learns the pseudonym), then one of two grants decides.
    const p = await g.loadPatient(tx, ctx, t, patientId);
    decideAccounting(g, ctx, t, p.facts);
    const rows = await tx
      .selectFrom('disclosures')
      .selectAll()
      .where('pseudonym', '=', p.link.pseudonym)
      .where('practice_id', '=', ctx.practiceId)
      .orderBy('disclosed_at')
      .orderBy('id')
      .execute();
    const keyId = p.link.clinicalKeyId;
    const wrapped = rows.length > 0 ? await g.wrappedKey(tx, keyId) : undefined;
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    return () =>
      rows.map((r) => {
        const d = keys.openJson<Description>(keyId, wrapped as Buffer, disclosureAt(r.id), r.description);
        return {
          id: r.id,
          disclosedAt: r.disclosed_at,
          disclosedBy: r.disclosed_by,
          recipient: { id: r.recipient_id, name: r.recipient_name },
          purpose: r.purpose,
          event: d.event,
          fields: d.fields,
          deliveryId: r.delivery_id,
        };
      });
  });
}
