import type { Insertable, Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import type { AuditEntryTable, CoreDb } from '../db/schema.ts';
import { type AuditEvent, encodeControl } from './entry.ts';

const opt = (v: string | null | undefined): string | null =>
  v === undefined || v === null ? null : encodeControl(v);

export type AuditRow = Insertable<AuditEntryTable>;

/** The row one audit entry is stored as; control characters in every text field are encoded. */
export function auditRow(ctx: AccessContext, event: AuditEvent, at: Date): AuditRow {
  return {
    at,
    practice_id: ctx.practiceId,
    actor_kind: ctx.actor.kind,
    actor_id: encodeControl(ctx.actor.id),
    role: encodeControl(ctx.role),
    on_behalf_of: opt(ctx.onBehalfOf),
    action: event.action,
    resource_type: event.resourceType,
    resource_id: opt(event.resourceId),
    patient_pseudonym: opt(event.patientPseudonym),
    purpose: ctx.purpose,
    outcome: event.outcome,
    reason: opt(event.reason),
    client_address: opt(ctx.clientAddress),
    user_agent_hash: opt(ctx.userAgentHash),
    session_id: opt(ctx.sessionId),
    request_id: opt(ctx.requestId),
    detail: event.detail ? JSON.stringify(event.detail) : null,
  };
}

/**
 * Appends one audit entry in the caller's transaction. No lock and no hash on this path: the
 * sealer hashes committed entries later (DESIGN.md "append"). If this insert fails, the
 * caller's transaction fails with it, so the access it records never happens.
 */
export async function append(
  db: Kysely<CoreDb>,
  ctx: AccessContext,
  event: AuditEvent,
  at: Date,
): Promise<void> {
  await db
    .insertInto('audit_entries')
    .values(auditRow(ctx, event, at))
    .execute();
}
