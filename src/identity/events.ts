import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { type AccessContext, accessContext } from '../access/context.ts';
import { append } from '../audit/append.ts';
import type { AuditOutcome } from '../audit/entry.ts';
import type { CoreDb } from '../db/schema.ts';

/** Where a request comes from: what every security event records besides who and what. */
export interface RequestMeta {
  readonly practiceId: string;
  readonly clientAddress: string;
  readonly userAgentHash: string | null;
  readonly requestId: string;
  readonly sessionId?: string;
}

/** SHA-256 of the user agent, truncated: enough to tell devices apart, not to fingerprint text. */
export const userAgentHash = (ua: string | undefined): string | null =>
  ua ? createHash('sha256').update(ua).digest('hex').slice(0, 16) : null;

/** A keyed-free hash of an attempted username, for counting distinct usernames per address. */
export const subjectHash = (username: string): string =>
  createHash('sha256').update(`custos-subject:${username}`).digest('hex').slice(0, 32);

export function securityContext(
  meta: RequestMeta,
  actor: { id: string; role?: string; kind?: 'user' | 'system' },
): AccessContext {
  return accessContext({
    actor: { kind: actor.kind ?? 'user', id: actor.id },
    role: actor.role ?? '-',
    practiceId: meta.practiceId,
    purpose: 'operations',
    clientAddress: meta.clientAddress,
    ...(meta.userAgentHash ? { userAgentHash: meta.userAgentHash } : {}),
    ...(meta.sessionId ? { sessionId: meta.sessionId } : {}),
    requestId: meta.requestId,
  });
}

/**
 * Audits a security event (login, login-failed, lockout, ip-blocked, session-timeout, …) in its
 * own transaction. Never records an attempted password; an unknown username appears only as
 * `detail.subject` (a hash).
 */
export async function securityEvent(
  db: Kysely<CoreDb>,
  ctx: AccessContext,
  event: {
    action: string;
    resourceType: 'user' | 'session' | 'address' | 'request' | 'practice' | 'route';
    resourceId?: string | null;
    outcome: AuditOutcome;
    reason?: string;
    detail?: Record<string, string | number | boolean>;
  },
  at: Date,
): Promise<void> {
  await append(db, ctx, { ...event, reason: event.reason ?? null, detail: event.detail ?? null }, at);
}
