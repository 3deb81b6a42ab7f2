import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { STAFF_ROLES } from '../access/grants.ts';
import { CONSENT_CATEGORIES, type Consent } from '../access/policy.ts';
import { CustosError, validationError } from '../errors.ts';
import type * as store from './chart.store.ts';
import { consentAt, Denied, type GateCore } from './gate-core.ts';
import { assertStaff } from './patients.service.ts';

/**
 * Gate calls that change who may see a chart: consent directives, the restricted flag, shares
 * of psychotherapy notes, release to the portal, and break-the-glass requests. Each is decided
 * by the policy and audited like any other gate call.
 */

const ConsentInput = z
  .object({
    denyUsers: z.array(z.uuid('must be user ids')).max(50).default([]),
    denyRoles: z.array(z.enum(STAFF_ROLES)).max(STAFF_ROLES.length).default([]),
    withholdCategories: z.array(z.enum(CONSENT_CATEGORIES)).max(CONSENT_CATEGORIES.length).default([]),
    portalOptOut: z.boolean().default(false),
  })
  .strict();

function parseConsent(input: unknown): Consent {
  const r = ConsentInput.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError(
      ['consent', ...(issue?.path ?? []).map(String)].join('.'),
      issue?.message ?? 'is invalid',
    );
  }
  return {
    denyUsers: [...new Set(r.data.denyUsers)],
    denyRoles: [...new Set(r.data.denyRoles)],
    withholdCategories: [...new Set(r.data.withholdCategories)],
    portalOptOut: r.data.portalOptOut,
  };
}

const NO_CONSENT: Consent = Object.freeze({
  denyUsers: [],
  denyRoles: [],
  withholdCategories: [],
  portalOptOut: false,
});

export interface ConsentState {
  readonly version: number;
  readonly directives: Consent;
  readonly updatedAt: Date | null;
  readonly updatedBy: string | null;
}

export async function readConsent(g: GateCore, ctx: AccessContext, patientId: string): Promise<ConsentState> {
  return g.call(ctx, { action: 'read', resourceType: 'consent' }, async (tx, t) => {
    const p = await g.patientFacts(tx, ctx, t, patientId, 'consent', { kind: 'patient' });
    const row = await tx
      .selectFrom('patient_consents')
      .select(['version', 'updated_at', 'updated_by'])
      .where('patient_id', '=', p.id)
      .executeTakeFirst();
    return () => ({
      version: row?.version ?? 0,
      directives: p.facts.consent ?? NO_CONSENT,
      updatedAt: row?.updated_at ?? null,
      updatedBy: row?.updated_by ?? null,
    });
  });
}

/**
 * Replaces a patient's consent directives (optimistic: `expectedVersion` is the version read,
 * 0 for none yet). They take effect on the next request. The entry records that they changed,
 * never what they say.
 */
export async function setConsent(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  expectedVersion: number,
  input: unknown,
): Promise<{ version: number }> {
  return g.call(ctx, { action: 'consent', resourceType: 'consent' }, async (tx, t) => {
    const directives = parseConsent(input);
    if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
      throw validationError('expectedVersion', 'must be 0 or a positive integer');
    }
    const p = await g.patientFacts(tx, ctx, t, patientId, 'consent', { kind: 'patient' });
    await assertStaff(tx, ctx.practiceId, directives.denyUsers, 'consent.denyUsers');
    const now = g.clock();
    const version = expectedVersion + 1;
    const body = g.keyring.sealLink(consentAt(p.id, version), Buffer.from(JSON.stringify(directives)));
    if (expectedVersion === 0) {
      const r = await tx
        .insertInto('patient_consents')
        .values({
          patient_id: p.id,
          practice_id: ctx.practiceId,
          version,
          body,
          updated_at: now,
          updated_by: ctx.actor.id,
        })
        .onConflict((oc) => oc.column('patient_id').doNothing())
        .executeTakeFirst();
      if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) {
        throw conflict(expectedVersion);
      }
    } else {
      const r = await tx
        .updateTable('patient_consents')
        .set({ version, body, updated_at: now, updated_by: ctx.actor.id })
        .where('patient_id', '=', p.id)
        .where('version', '=', expectedVersion)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        throw conflict(expectedVersion);
      }
    }
    t.detail = { ...(t.detail ?? {}), version };
    return () => ({ version });
  });
}

const conflict = (v: number) =>
  new CustosError('CUSTOS_ERR_VERSION_CONFLICT', `consent directives were changed since version ${v}`);

/** Flags a patient restricted (staff member, public figure) or lifts the flag. */
export async function setRestricted(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  restricted: boolean,
): Promise<void> {
  return g.call(ctx, { action: 'restrict', resourceType: 'patient' }, async (tx, t) => {
    if (typeof restricted !== 'boolean') {
      throw validationError('restricted', 'must be true or false');
    }
    const p = await g.patientFacts(tx, ctx, t, patientId, 'flag', { kind: 'patient' });
    await tx.updateTable('patients').set({ restricted }).where('id', '=', p.id).execute();
    t.detail = { ...(t.detail ?? {}), restricted };
    return () => undefined;
  });
}

/** The author of a psychotherapy note shares it with a colleague (read only), or stops sharing. */
export async function shareRecord(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  userId: string,
  shared: boolean,
): Promise<void> {
  return g.call(ctx, { action: 'share', resourceType: 'record', resourceId: recordId }, async (tx, t) => {
    await g.recordFacts(tx, ctx, t, recordId, 'share');
    // Stopping a share works for any account, disabled ones included; sharing needs an active one.
    if (shared) {
      await assertStaff(tx, ctx.practiceId, [userId], 'userId');
    }
    if (userId === ctx.actor.id) {
      throw validationError('userId', 'must be a colleague, not the author');
    }
    t.detail = { ...(t.detail ?? {}), userId, shared };
    if (shared) {
      await tx
        .insertInto('record_shares')
        .values({
          record_id: recordId,
          practice_id: ctx.practiceId,
          user_id: userId,
          shared_by: ctx.actor.id,
          created_at: g.clock(),
        })
        .onConflict((oc) => oc.columns(['record_id', 'user_id']).doNothing())
        .execute();
    } else {
      await tx
        .deleteFrom('record_shares')
        .where('record_id', '=', recordId)
        .where('user_id', '=', userId)
        .execute();
    }
    return () => undefined;
  });
}

/** A clinician releases a record to the patient portal (or withdraws it). */
export async function releaseRecord(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  released: boolean,
): Promise<void> {
  return g.call(ctx, { action: 'release', resourceType: 'record', resourceId: recordId }, async (tx, t) => {
    await g.recordFacts(tx, ctx, t, recordId, 'release');
    await tx
      .updateTable('records')
      .set({ released_at: released ? g.clock() : null })
      .where('id', '=', recordId)
      .execute();
    t.detail = { ...(t.detail ?? {}), released };
    return () => undefined;
  });
}

export const BREAK_GLASS_REASONS = ['emergency-treatment', 'urgent-care', 'patient-safety', 'other'] as const;
export const BREAK_GLASS_DEFAULT_MINUTES = 60;
export const BREAK_GLASS_MAX_MINUTES = 8 * 60;

const BreakGlassInput = z
  .object({
    reasonCategory: z.enum(BREAK_GLASS_REASONS),
    reason: z.string().trim().min(10, 'must say why, in at least 10 characters').max(2000),
    minutes: z
      .number()
      .int()
      .min(5, 'must be at least 5')
      .max(BREAK_GLASS_MAX_MINUTES, `must be at most ${BREAK_GLASS_MAX_MINUTES} (8 hours)`)
      .default(BREAK_GLASS_DEFAULT_MINUTES),
  })
  .strict();

export const breakGlassReasonAt = (grantId: string) => ({
  table: 'break_glass_grants',
  column: 'reason',
  row: grantId,
  version: 0,
});

export interface BreakGlassGrant {
  readonly id: string;
  readonly patientId: string;
  readonly startsAt: Date;
  readonly expiresAt: Date;
  readonly consentOverride: boolean;
}

/**
 * Emergency access (ONC 170.315(d)(6)): a clinician or nurse who cannot otherwise see this
 * patient gets a time-limited grant. The free-text reason is sealed; the audit entry carries
 * the grant id, the category and the sealed reason, and every access under the grant names it.
 * Step-up re-authentication is checked by the caller (the HTTP route) before this runs.
 */
export async function requestBreakGlass(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  input: unknown,
): Promise<BreakGlassGrant> {
  return g.call(ctx, { action: 'break-glass', resourceType: 'break-glass' }, async (tx: store.Tx, t) => {
    const r = BreakGlassInput.safeParse(input);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw validationError(
        (issue?.path ?? []).map(String).join('.') || 'request',
        issue?.message ?? 'is invalid',
      );
    }
    const p = await g.loadPatient(tx, ctx, t, patientId);
    let d: ReturnType<GateCore['decide']>;
    try {
      d = g.decide(ctx, t, 'break-glass', { kind: 'patient' }, { ...p.facts, breakGlass: null });
    } catch (e) {
      if (e instanceof Denied && e.reason === 'not-needed') {
        throw new CustosError(
          'CUSTOS_ERR_CONFLICT',
          "you are on this patient's care team already; emergency access is not needed",
        );
      }
      throw e;
    }
    const id = randomUUID();
    const now = g.clock();
    const expiresAt = new Date(now.getTime() + r.data.minutes * 60_000);
    const sealed = g.keyring.sealSecret(breakGlassReasonAt(id), Buffer.from(r.data.reason, 'utf8'));
    await tx
      .insertInto('break_glass_grants')
      .values({
        id,
        practice_id: ctx.practiceId,
        user_id: ctx.actor.id,
        patient_id: p.id,
        reason_category: r.data.reasonCategory,
        reason: sealed,
        starts_at: now,
        expires_at: expiresAt,
        ended_at: null,
        disposition: null,
        review_comment: null,
        reviewed_by: null,
        reviewed_at: null,
      })
      .execute();
    t.resourceId = id;
    t.purpose = 'emergency';
    t.detail = {
      ...(t.detail ?? {}),
      breakGlass: id,
      reasonCategory: r.data.reasonCategory,
      reasonSealed: sealed.toString('base64'),
      expiresAt: expiresAt.toISOString(),
      ...(d.consentOverride ? { consentOverride: true } : {}),
    };
    return () => ({ id, patientId: p.id, startsAt: now, expiresAt, consentOverride: d.consentOverride });
  });
}
