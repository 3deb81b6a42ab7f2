import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import { isActivePrivacyOfficer } from '../access/officers.ts';
import { append } from '../audit/append.ts';
import type { CoreDb } from '../db/schema.ts';
import { isCustosError, notFound } from '../errors.ts';
import { isUuid } from '../ids.ts';
import type { IntegrationDb, IntegrationTables } from './tables.ts';

/**
 * How every integration call is checked and audited: who may make it (read from the account,
 * not from the role the session claims), then the work and its success entry in one
 * transaction; a denial or a failure is audited in its own transaction. "Not allowed" and "no
 * such integration" are the same 404; the entry keeps the real reason.
 */

export type IntegrationAction =
  | 'integration-created'
  | 'integration-updated'
  | 'integration-deactivated'
  | 'integration-approved'
  | 'integration-rejected'
  | 'integration-list'
  | 'webhook-delivery-list';

/** Who may make a call: the administrator configures, the privacy officer decides, both list. */
export type Caller = 'admin' | 'officer' | 'admin-or-officer';

/** What the audit entry of a call will say, filled in as the call learns it. */
export interface Trail {
  id: string | null;
  detail: Record<string, string | number | boolean | readonly string[]>;
  /** Set before throwing when the call refuses (not fails): the entry is a denial with this reason. */
  denied?: string;
}

/**
 * Runs `f` for `ctx` if it is a `who`, with exactly one audit entry for `action` whatever
 * happens: `success` (committed with the work), `denied` (`role`, `not-found`, or the reason
 * `f` put in `t.denied`) or `error` (the error code).
 */
export async function auditedCall<T>(
  o: { readonly db: Kysely<CoreDb>; readonly clock: () => Date },
  ctx: AccessContext,
  call: { readonly action: IntegrationAction; readonly id: string | null; readonly who: Caller },
  f: (tx: Kysely<IntegrationDb>, t: Trail) => Promise<T>,
): Promise<T> {
  const t: Trail = { id: call.id === null ? null : call.id.slice(0, 64), detail: {} };
  const entry = (db: Kysely<CoreDb>, outcome: 'success' | 'denied' | 'error', reason?: string) =>
    append(
      db,
      ctx,
      {
        action: call.action,
        resourceType: 'integration',
        resourceId: t.id,
        outcome,
        reason: reason ?? null,
        detail: Object.keys(t.detail).length > 0 ? t.detail : null,
      },
      o.clock(),
    );
  if (!(await mayCall(o.db, ctx, call.who))) {
    await entry(o.db, 'denied', 'role');
    throw notFound('integration');
  }
  try {
    return await o.db
      .withTables<IntegrationTables>()
      .transaction()
      .execute(async (tx) => {
        const result = await f(tx, t);
        await entry(tx as unknown as Kysely<CoreDb>, 'success');
        return result;
      });
  } catch (e) {
    const nf = isCustosError(e, 'CUSTOS_ERR_NOT_FOUND');
    if (t.denied !== undefined || nf) {
      await entry(o.db, 'denied', t.denied ?? 'not-found');
    } else {
      await entry(o.db, 'error', isCustosError(e) ? e.code : 'internal');
    }
    throw e;
  }
}

/** Whether the caller is an active administrator, privacy officer, or either, of the practice. */
async function mayCall(db: Kysely<CoreDb>, ctx: AccessContext, who: Caller): Promise<boolean> {
  if (ctx.actor.kind === 'system') {
    // A decision of the two-person rule is a person's; the system actor only configures and lists.
    return who !== 'officer';
  }
  if (ctx.actor.kind !== 'user' || !isUuid(ctx.actor.id)) {
    return false;
  }
  const admin = async () => {
    const u = await db
      .selectFrom('users')
      .select(['roles', 'status'])
      .where('id', '=', ctx.actor.id)
      .where('practice_id', '=', ctx.practiceId)
      .executeTakeFirst();
    return u?.status === 'active' && u.roles.includes('admin');
  };
  const officer = () => isActivePrivacyOfficer(db, ctx.practiceId, ctx.actor.id);
  switch (who) {
    case 'admin':
      return admin();
    case 'officer':
      return officer();
    case 'admin-or-officer':
      return (await admin()) || officer();
    default:
      return false;
  }
}
