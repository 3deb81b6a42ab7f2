import { randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AccessContext } from '../access/context.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import { CustosError, notFound } from '../errors.ts';
import { isUuid } from '../ids.ts';
import {
  type ApprovalState,
  afterChange,
  configHash,
  type IntegrationStatus,
  needsApproval,
} from './approval.ts';
import { auditedCall, type Caller, type IntegrationAction, type Trail } from './audited.ts';
import {
  APPOINTMENT_EVENTS,
  ApproveInput,
  checkFields,
  checkUrl,
  DEFAULT_FIELDS,
  IntegrationInput,
  IntegrationPatch,
  parse,
  type ReceiverPolicy,
  RejectInput,
} from './config.ts';
import type { IntegrationDb, IntegrationTables } from './tables.ts';
import {
  configDetail,
  type DeliveryStatus,
  type DeliveryView,
  deliveryStatus,
  deliveryView,
  type IntegrationRow,
  type IntegrationView,
  integrationView,
} from './views.ts';

export type { DeliveryStatus, DeliveryView, IntegrationView } from './views.ts';

/**
 * Integrations: third parties that receive appointment webhooks (issue 6, item 8). Only the
 * practice's administrator configures them, after a step-up (the route checks both; this service
 * checks the account's role again and audits a denial as "not found"). The signing secret is
 * shown once, at creation, and never again; lists carry no secret.
 *
 * The two-person rule (approval.ts): an allow-list that reads about the patient through the gate
 * waits for a privacy officer, not the administrator who made the change, to approve exactly that
 * configuration; until then nothing is queued or sent. The officer may list integrations (never
 * a secret), approve or reject.
 *
 * Every change and decision is audited (`integration-created`, `-updated`, `-deactivated`,
 * `-approved`, `-rejected`) with the field allow-list and events, denials included.
 */

export const secretAt = (id: string) => ({ table: 'integrations', column: 'secret', row: id, version: 0 });
export const idKeyAt = (id: string) => ({ table: 'integrations', column: 'id_key', row: id, version: 0 });

/** A fresh signing secret: 256 bits, prefixed so it is recognizable in a secret scanner. */
const newSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;

type Row = IntegrationRow;

/** The approval columns for a configuration that needs none, or that now waits for one. */
const notRequired = {
  approval: 'not-required',
  submitted_by: null,
  submitted_at: null,
  reviewed_by: null,
  reviewed_at: null,
  review_reason: null,
  approved_config_hash: null,
} as const;
const submitted = (by: string, at: Date) =>
  ({ ...notRequired, approval: 'pending-approval', submitted_by: by, submitted_at: at }) as const;

export interface IntegrationsOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  readonly clock: () => Date;
  readonly receivers: ReceiverPolicy;
  /** How recent the officer's re-authentication must be to approve or reject (default 5 minutes). */
  readonly stepUpMs?: number;
}

export class Integrations {
  readonly #db: Kysely<IntegrationDb>;
  readonly #o: IntegrationsOptions;

  constructor(options: IntegrationsOptions) {
    this.#o = options;
    this.#db = options.db.withTables<IntegrationTables>();
  }

  /**
   * Creates an integration; the secret in the answer is shown this once. Fields default to the
   * time slot and the opaque appointment id; events to booked, rescheduled and cancelled. An
   * allow-list that reads through the gate is created `pending-approval`.
   */
  async create(
    ctx: AccessContext,
    input: unknown,
  ): Promise<{ integration: IntegrationView; secret: string }> {
    return this.#call(ctx, 'integration-created', null, 'admin', async (tx, t) => {
      const i = parse(IntegrationInput, input);
      const url = checkUrl(i.url, this.#o.receivers);
      const fields = checkFields(i.fields ?? DEFAULT_FIELDS);
      const events = [...new Set(i.events ?? APPOINTMENT_EVENTS.filter((e) => e !== 'no-show'))];
      const id = randomUUID();
      const secret = newSecret();
      const idKey = randomBytes(32);
      const now = this.#o.clock();
      const row = await tx
        .insertInto('integrations')
        .values({
          id,
          practice_id: ctx.practiceId,
          name: i.name,
          url,
          secret: this.#o.keyring.sealSecret(secretAt(id), Buffer.from(secret, 'utf8')),
          id_key: this.#o.keyring.sealSecret(idKeyAt(id), idKey),
          fields,
          events,
          purpose: i.purpose,
          active: true,
          created_by: ctx.actor.id,
          created_at: now,
          updated_by: ctx.actor.id,
          updated_at: now,
          version: 1,
          ...(needsApproval(fields) ? submitted(ctx.actor.id, now) : notRequired),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      idKey.fill(0);
      t.id = id;
      t.detail = configDetail(row);
      return { integration: integrationView(row), secret };
    });
  }

  /**
   * Changes name, URL, fields, events, purpose or `active`; the secret stays. A change of what an
   * approval covers (URL, fields, events, purpose) of an allow-list that reads through the gate
   * waits for approval again; deliveries queued under the old configuration are given up.
   */
  async update(ctx: AccessContext, id: string, input: unknown): Promise<IntegrationView> {
    return this.#call(ctx, 'integration-updated', id, 'admin', async (tx, t) => {
      const current = await this.#find(tx, ctx, id, true);
      const p = parse(IntegrationPatch, input);
      const now = this.#o.clock();
      const next = {
        url: p.url === undefined ? current.url : checkUrl(p.url, this.#o.receivers),
        fields: p.fields === undefined ? current.fields : checkFields(p.fields),
        events: p.events === undefined ? current.events : [...new Set(p.events)],
        purpose: p.purpose ?? current.purpose,
      };
      const [before, after] = [configHash(current), configHash(next)];
      const step = afterChange(
        { state: current.approval, hash: before, approvedHash: current.approved_config_hash },
        { fields: next.fields, hash: after },
      );
      const row = await tx
        .updateTable('integrations')
        .set({
          ...next,
          ...(p.name === undefined ? {} : { name: p.name }),
          ...(p.active === undefined ? {} : { active: p.active }),
          ...(step === 'submit' ? submitted(ctx.actor.id, now) : step === 'not-required' ? notRequired : {}),
          version: current.version + 1,
          updated_by: ctx.actor.id,
          updated_at: now,
        })
        .where('id', '=', current.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const givenUp = before === after ? 0 : await this.#giveUp(tx, current.id, 'configuration-changed');
      t.detail = {
        changed: Object.keys(p).sort(),
        ...configDetail(row),
        active: row.active,
        ...(givenUp > 0 ? { pendingGivenUp: givenUp } : {}),
      };
      return integrationView(row);
    });
  }

  /** Stops deliveries to an integration (pending ones are given up); the row stays for the accounting. */
  async deactivate(ctx: AccessContext, id: string): Promise<void> {
    return this.#call(ctx, 'integration-deactivated', id, 'admin', async (tx, t) => {
      const current = await this.#find(tx, ctx, id, true);
      const now = this.#o.clock();
      await tx
        .updateTable('integrations')
        .set({ active: false, version: current.version + 1, updated_by: ctx.actor.id, updated_at: now })
        .where('id', '=', current.id)
        .execute();
      t.detail = { pendingGivenUp: await this.#giveUp(tx, current.id, 'integration-inactive') };
    });
  }

  /**
   * The privacy officer approves the integration's current configuration, which must be waiting
   * for approval and, when `expectedVersion` is given, be that version (412 otherwise). Nobody
   * approves a change of their own (409). From then on deliveries flow, while the URL, fields,
   * events and purpose stay exactly as approved.
   */
  async approve(ctx: AccessContext, id: string, input: unknown): Promise<IntegrationView> {
    return this.#review(ctx, id, 'integration-approved', input);
  }

  /**
   * The privacy officer rejects a configuration waiting for approval, or withdraws an approval,
   * with a reason the administrator sees. Nothing is sent; queued deliveries are given up. A new
   * configuration from the administrator is a new request.
   */
  async reject(ctx: AccessContext, id: string, input: unknown): Promise<IntegrationView> {
    return this.#review(ctx, id, 'integration-rejected', input);
  }

  async #review(
    ctx: AccessContext,
    id: string,
    action: 'integration-approved' | 'integration-rejected',
    input: unknown,
  ): Promise<IntegrationView> {
    const officer: AccessContext = ctx.purpose === 'audit' ? ctx : { ...ctx, purpose: 'audit' };
    return this.#call(officer, action, id, 'officer', async (tx, t) => {
      this.#assertStepUp(ctx, t);
      const approving = action === 'integration-approved';
      const r: { expectedVersion?: number; reason?: string } = parse(
        approving ? ApproveInput : RejectInput,
        input ?? {},
      );
      const current = await this.#find(tx, ctx, id, true);
      t.detail = { ...configDetail(current), submittedBy: current.submitted_by ?? 'none' };
      const open: readonly ApprovalState[] = approving
        ? ['pending-approval']
        : ['pending-approval', 'approved'];
      if (!open.includes(current.approval)) {
        t.denied = `state-${current.approval}`;
        throw new CustosError(
          'CUSTOS_ERR_CONFLICT',
          `this integration is ${current.approval}, nothing to decide`,
        );
      }
      if (r.expectedVersion !== undefined && r.expectedVersion !== current.version) {
        t.denied = 'stale-version';
        throw new CustosError(
          'CUSTOS_ERR_VERSION_CONFLICT',
          `the integration changed since version ${r.expectedVersion}; it is at version ${current.version}`,
        );
      }
      // Two persons: whoever made the change does not decide on it, whatever else their account holds.
      if (current.approval === 'pending-approval' && current.submitted_by === ctx.actor.id) {
        t.denied = 'own-change';
        throw new CustosError(
          'CUSTOS_ERR_CONFLICT',
          'nobody decides on a change of their own: another privacy officer must',
        );
      }
      // The decision is about the configuration the officer saw: without its version, a change
      // made in the seconds before the click would be approved unseen.
      if (r.expectedVersion === undefined) {
        t.denied = 'no-version';
        throw new CustosError(
          'CUSTOS_ERR_VALIDATION',
          'expectedVersion: must be given: the version of the configuration you reviewed',
          { field: 'expectedVersion' },
        );
      }
      const now = this.#o.clock();
      const row = await tx
        .updateTable('integrations')
        .set({
          approval: approving ? 'approved' : 'rejected',
          approved_config_hash: approving ? configHash(current) : null,
          reviewed_by: ctx.actor.id,
          reviewed_at: now,
          review_reason: approving ? null : (r.reason ?? null),
          version: current.version + 1,
        })
        .where('id', '=', current.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      const givenUp = approving ? 0 : await this.#giveUp(tx, current.id, 'approval-rejected');
      t.detail = {
        ...configDetail(row),
        reviewedVersion: current.version,
        submittedBy: current.submitted_by ?? 'none',
        ...(givenUp > 0 ? { pendingGivenUp: givenUp } : {}),
      };
      return integrationView(row);
    });
  }

  /**
   * The practice's integrations, newest first, without secrets; `status` narrows them (the
   * privacy officer's queue is `pending-approval`).
   */
  async list(ctx: AccessContext, filter: { status?: IntegrationStatus } = {}): Promise<IntegrationView[]> {
    return this.#call(ctx, 'integration-list', null, 'admin-or-officer', async (tx, t) => {
      let q = tx.selectFrom('integrations').selectAll().where('practice_id', '=', ctx.practiceId);
      switch (filter.status) {
        case undefined:
          break;
        case 'inactive':
          q = q.where('active', '=', false);
          break;
        case 'active':
          q = q.where('active', '=', true).where('approval', 'in', ['not-required', 'approved']);
          break;
        case 'pending-approval':
        case 'rejected':
          q = q.where('active', '=', true).where('approval', '=', filter.status);
          break;
        default:
          throw new Error('unknown integration status');
      }
      const rows = await q.orderBy('created_at', 'desc').orderBy('id').execute();
      t.detail = { count: rows.length, ...(filter.status ? { status: filter.status } : {}) };
      return rows.map(integrationView);
    });
  }

  /** The latest deliveries of one integration (at most `limit`, default 100), newest first. */
  async deliveries(ctx: AccessContext, id: string, limit = 100): Promise<DeliveryView[]> {
    return this.#call(ctx, 'webhook-delivery-list', id, 'admin', async (tx, t) => {
      const current = await this.#find(tx, ctx, id);
      const rows = await tx
        .selectFrom('webhook_deliveries')
        .select([
          'id',
          'integration_id',
          'event',
          'appointment_id',
          'attempts',
          'last_status',
          'last_attempt_at',
          'next_attempt_at',
          'created_at',
          'delivered_at',
          'gave_up_at',
        ])
        .where('integration_id', '=', current.id)
        .where('practice_id', '=', ctx.practiceId)
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(Math.min(Math.max(1, limit), 1000))
        .execute();
      t.detail = { count: rows.length };
      return rows.map(deliveryView);
    });
  }

  /**
   * Delivery status by delivery id, for the accounting of disclosures (no permission of its own:
   * the caller has already been allowed to see those disclosures).
   */
  async statusOf(
    practiceId: string,
    ids: readonly string[],
  ): Promise<Map<string, { status: DeliveryStatus; deliveredAt: Date | null }>> {
    const wanted = ids.filter(isUuid);
    if (wanted.length === 0) {
      return new Map();
    }
    const rows = await this.#db
      .selectFrom('webhook_deliveries')
      .select(['id', 'delivered_at', 'gave_up_at'])
      .where('practice_id', '=', practiceId)
      .where('id', 'in', wanted)
      .execute();
    return new Map(rows.map((r) => [r.id, { status: deliveryStatus(r), deliveredAt: r.delivered_at }]));
  }

  /** One call, checked and audited (audited.ts). */
  #call<T>(
    ctx: AccessContext,
    action: IntegrationAction,
    id: string | null,
    who: Caller,
    f: (tx: Kysely<IntegrationDb>, t: Trail) => Promise<T>,
  ): Promise<T> {
    return auditedCall(this.#o, ctx, { action, id, who }, f);
  }

  /** Gives up the deliveries of an integration not yet sent (their payloads are deleted). */
  async #giveUp(tx: Kysely<IntegrationDb>, integrationId: string, status: string): Promise<number> {
    const r = await tx
      .updateTable('webhook_deliveries')
      .set({ gave_up_at: this.#o.clock(), payload: null, next_attempt_at: null, last_status: status })
      .where('integration_id', '=', integrationId)
      .where('delivered_at', 'is', null)
      .where('gave_up_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /** The row; `lock` holds it for this transaction (a concurrent change waits, a decision sees the latest). */
  async #find(tx: Kysely<IntegrationDb>, ctx: AccessContext, id: string, lock = false): Promise<Row> {
    if (!isUuid(id)) {
      throw notFound('integration');
    }
    const q = tx
      .selectFrom('integrations')
      .selectAll()
      .where('id', '=', id)
      .where('practice_id', '=', ctx.practiceId);
    const row = await (lock ? q.forUpdate() : q).executeTakeFirst();
    if (!row) {
      throw notFound('integration');
    }
    return row;
  }

  /** The route asks for the step-up; a decision of the two-person rule checks it again here. */
  #assertStepUp(ctx: AccessContext, t: Trail): void {
    const max = this.#o.stepUpMs ?? 5 * 60_000;
    const at = ctx.reauthenticatedAt;
    if (!at || this.#o.clock().getTime() - at.getTime() > max) {
      t.denied = 'step-up';
      throw new CustosError(
        'CUSTOS_ERR_STEP_UP',
        'this action needs a recent re-authentication: POST /api/v1/auth/reauth with password and code',
      );
    }
  }
}
