import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { seal } from '../crypto/envelope.ts';
import { CustosError, validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import type * as store from './chart.store.ts';
import { Denied, type GateCore } from './gate-core.ts';
import { parseBody, type Sensitivity } from './model.ts';

/**
 * The lifecycle of clinical notes: draft -> signed (by its author, after a re-authentication
 * within the last 5 minutes) -> amended (a new signed note linked to the original, with a
 * reason; the original stays readable). A signed note cannot be edited. And patients'
 * amendment requests (ONC 170.315(d)(4)): recorded, then accepted (linked to the amendment) or
 * denied (with the reason kept beside the request).
 */

export const SIGN_REAUTH_MS = 5 * 60_000;

function assertRecentReauth(g: GateCore, ctx: AccessContext): void {
  if (ctx.actor.kind === 'system') {
    return;
  }
  const at = ctx.reauthenticatedAt;
  if (!at || g.clock().getTime() - at.getTime() > SIGN_REAUTH_MS) {
    throw new CustosError(
      'CUSTOS_ERR_STEP_UP',
      'signing needs a re-authentication within the last 5 minutes: POST /api/v1/auth/reauth',
    );
  }
}

/** The author signs a draft note; `expectedVersion` is the version they read. */
export async function signNote(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  expectedVersion: number,
): Promise<{ signedAt: Date }> {
  return g.call(ctx, { action: 'sign', resourceType: 'record', resourceId: recordId }, async (tx, t) => {
    const head = await g.recordFacts(tx, ctx, t, recordId, 'write');
    if (head.kind !== 'note') {
      throw validationError('recordId', 'only notes are signed');
    }
    if (head.author_id !== ctx.actor.id && ctx.actor.kind !== 'system') {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'only the author of a note signs it');
    }
    if (head.signed_at !== null) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'this note is signed already');
    }
    if (!Number.isInteger(expectedVersion) || expectedVersion < 1) {
      throw validationError('expectedVersion', 'must be a positive integer');
    }
    assertRecentReauth(g, ctx);
    const signedAt = g.clock();
    const r = await tx
      .updateTable('records')
      .set({ signed_at: signedAt, signed_by: ctx.actor.id })
      .where('id', '=', recordId)
      .where('current_version', '=', expectedVersion)
      .where('signed_at', 'is', null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) {
      throw new CustosError(
        'CUSTOS_ERR_VERSION_CONFLICT',
        `note was changed since version ${expectedVersion}`,
      );
    }
    t.detail = { ...(t.detail ?? {}), version: expectedVersion };
    return () => ({ signedAt });
  });
}

const AmendInput = z
  .object({
    reason: z.string().trim().min(3, 'must say why').max(2000, 'must be at most 2000 characters'),
    body: z.unknown(),
  })
  .strict();

/**
 * Amends a signed note: a new note, signed at once by the caller, linked to the original (which
 * stays readable and now names its amendment). Same patient, sensitivity and categories.
 */
export async function amendNote(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  input: unknown,
): Promise<{ id: string; version: number }> {
  return g.call(ctx, { action: 'amend', resourceType: 'record' }, async (tx, t, keys) => {
    const a = AmendInput.safeParse(input);
    if (!a.success) {
      const issue = a.error.issues[0];
      throw validationError(
        (issue?.path ?? []).map(String).join('.') || 'amendment',
        issue?.message ?? 'is invalid',
      );
    }
    const body = parseBody('note', { ...(a.data.body as object), amendmentReason: a.data.reason });
    const head = await g.recordFacts(tx, ctx, t, recordId, 'write');
    if (head.kind !== 'note') {
      throw validationError('recordId', 'only notes are amended');
    }
    if (head.signed_at === null) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'a draft is edited, not amended; sign it first');
    }
    if (head.amended_by !== null) {
      throw new CustosError(
        'CUSTOS_ERR_CONFLICT',
        `this note was amended already (by ${head.amended_by}); amend that one`,
      );
    }
    assertRecentReauth(g, ctx);
    const id = randomUUID();
    const now = g.clock();
    await g.insertRecord(tx, ctx, keys, {
      id,
      link: head.link,
      kind: 'note',
      sensitivity: head.sensitivity as Sensitivity,
      categories: head.categories,
      authorId: ctx.actor.id,
      body,
      now,
      signed: { by: ctx.actor.id },
      amends: recordId,
    });
    const r = await tx
      .updateTable('records')
      .set({ amended_by: id, updated_at: now })
      .where('id', '=', recordId)
      .where('amended_by', 'is', null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'this note was amended at the same time by someone else');
    }
    t.resourceId = id;
    t.detail = { ...(t.detail ?? {}), amends: recordId };
    return () => ({ id, version: 1 });
  });
}

// --- amendment requests (ONC 170.315(d)(4)) ---

const requestAt = (id: string) => ({ table: 'amendment_requests', column: 'request', row: id, version: 0 });
const decisionAt = (id: string) => ({ table: 'amendment_requests', column: 'decision', row: id, version: 0 });

const RequestInput = z
  .object({
    text: z
      .string()
      .trim()
      .min(3, 'must say what should change')
      .max(5000, 'must be at most 5000 characters'),
  })
  .strict();

/**
 * Records a patient's request to amend one of their records: by the patient (portal) or by staff
 * who reach that patient, on the patient's behalf. The text is sealed with the patient's key.
 */
export async function requestAmendment(
  g: GateCore,
  ctx: AccessContext,
  recordId: string,
  input: unknown,
): Promise<{ id: string }> {
  return g.call(ctx, { action: 'create', resourceType: 'amendment-request' }, async (tx, t, keys) => {
    const r = RequestInput.safeParse(input);
    if (!r.success) {
      throw validationError('text', r.error.issues[0]?.message ?? 'is invalid');
    }
    const head = await g.recordFacts(tx, ctx, t, recordId, 'read');
    const id = randomUUID();
    const now = g.clock();
    const keyId = head.link.clinicalKeyId;
    const key = keys.key(keyId, await g.wrappedKey(tx, keyId));
    await tx
      .insertInto('amendment_requests')
      .values({
        id,
        practice_id: ctx.practiceId,
        record_id: recordId,
        pseudonym: head.pseudonym,
        request: seal(key, keyId, requestAt(id), Buffer.from(r.data.text, 'utf8')),
        status: 'requested',
        decision: null,
        amendment_id: null,
        requested_by: ctx.actor.id,
        requested_at: now,
        decided_by: null,
        decided_at: null,
      })
      .execute();
    t.resourceId = id;
    t.detail = { ...(t.detail ?? {}), recordId };
    return () => ({ id });
  });
}

const DecisionInput = z.discriminatedUnion('decision', [
  z
    .object({ decision: z.literal('accepted'), amendmentId: z.uuid('must be the id of the amendment') })
    .strict(),
  z
    .object({
      decision: z.literal('denied'),
      reason: z.string().trim().min(3, 'must say why').max(2000, 'must be at most 2000 characters'),
    })
    .strict(),
]);

/**
 * A clinician who may change the record accepts a request (naming the signed amendment of that
 * record) or denies it (the reason is sealed and kept beside the request). Decided once.
 */
export async function decideAmendment(
  g: GateCore,
  ctx: AccessContext,
  requestId: string,
  input: unknown,
): Promise<void> {
  return g.call(
    ctx,
    { action: 'update', resourceType: 'amendment-request', resourceId: requestId },
    async (tx, t, keys) => {
      const d = DecisionInput.safeParse(input);
      if (!d.success) {
        const issue = d.error.issues[0];
        throw validationError(
          (issue?.path ?? []).map(String).join('.') || 'decision',
          issue?.message ?? 'is invalid',
        );
      }
      const req = await loadRequest(tx, ctx, requestId);
      const head = await g.recordFacts(tx, ctx, t, req.record_id, 'write');
      if (req.status !== 'requested') {
        throw new CustosError('CUSTOS_ERR_CONFLICT', `this request was ${req.status} already`);
      }
      const now = g.clock();
      if (d.data.decision === 'accepted') {
        const amendment = await tx
          .selectFrom('records')
          .select(['id'])
          .where('id', '=', d.data.amendmentId)
          .where('amends', '=', req.record_id)
          .where('practice_id', '=', ctx.practiceId)
          .executeTakeFirst();
        if (!amendment) {
          throw validationError('amendmentId', 'must be a signed amendment of the requested record');
        }
        await tx
          .updateTable('amendment_requests')
          .set({ status: 'accepted', amendment_id: amendment.id, decided_by: ctx.actor.id, decided_at: now })
          .where('id', '=', requestId)
          .execute();
      } else {
        const keyId = head.link.clinicalKeyId;
        const key = keys.key(keyId, await g.wrappedKey(tx, keyId));
        await tx
          .updateTable('amendment_requests')
          .set({
            status: 'denied',
            decision: seal(key, keyId, decisionAt(requestId), Buffer.from(d.data.reason, 'utf8')),
            decided_by: ctx.actor.id,
            decided_at: now,
          })
          .where('id', '=', requestId)
          .execute();
      }
      t.detail = { ...(t.detail ?? {}), decision: d.data.decision };
      return () => undefined;
    },
  );
}

async function loadRequest(tx: store.Tx, ctx: AccessContext, requestId: string) {
  if (!isUuid(requestId)) {
    throw new Denied('not-found');
  }
  const req = await tx
    .selectFrom('amendment_requests')
    .selectAll()
    .where('id', '=', requestId)
    .where('practice_id', '=', ctx.practiceId)
    .executeTakeFirst();
  if (!req) {
    throw new Denied('not-found');
  }
  return req;
}

export interface AmendmentRequest {
  readonly id: string;
  readonly recordId: string;
  readonly text: string;
  readonly status: 'requested' | 'accepted' | 'denied';
  readonly amendmentId: string | null;
  /** The reason a denied request was denied. */
  readonly denialReason: string | null;
  readonly requestedBy: string;
  readonly requestedAt: Date;
  readonly decidedBy: string | null;
  readonly decidedAt: Date | null;
}

/** A patient's amendment requests, oldest first, for those who may read the patient's records. */
export async function listAmendmentRequests(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
): Promise<AmendmentRequest[]> {
  return g.call(ctx, { action: 'list', resourceType: 'amendment-request' }, async (tx, t, keys) => {
    // The texts are about records: those who read notes see them (not front desk or billing).
    const p = await g.patientFacts(tx, ctx, t, patientId, 'read', { kind: 'section', section: 'note' });
    const rows = await tx
      .selectFrom('amendment_requests')
      .selectAll()
      .where('pseudonym', '=', p.link.pseudonym)
      .where('practice_id', '=', ctx.practiceId)
      .orderBy('requested_at')
      .execute();
    const keyId = p.link.clinicalKeyId;
    const wrapped = rows.length > 0 ? await g.wrappedKey(tx, keyId) : undefined;
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    return () => {
      const key = wrapped ? keys.key(keyId, wrapped) : undefined;
      return rows.map((r) => ({
        id: r.id,
        recordId: r.record_id,
        text: key ? keys.openText(keyId, wrapped as Buffer, requestAt(r.id), r.request) : '',
        status: r.status as AmendmentRequest['status'],
        amendmentId: r.amendment_id,
        denialReason:
          r.decision && key ? keys.openText(keyId, wrapped as Buffer, decisionAt(r.id), r.decision) : null,
        requestedBy: r.requested_by,
        requestedAt: r.requested_at,
        decidedBy: r.decided_by,
        decidedAt: r.decided_at,
      }));
    };
  });
}
