import { createHmac, randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { systemContext } from '../access/context.ts';
import type { Chart } from '../chart/gate.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { CoreDb } from '../db/schema.ts';
import type { AppointmentEvent, AppointmentListener } from '../scheduling/events.ts';
import { type ApprovalState, configHash, mayDeliver } from './approval.ts';
import { type AllowedField, isGateRead, type ReceiverPolicy } from './config.ts';
import { idKeyAt, secretAt } from './integrations.ts';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signWebhook } from './signature.ts';
import type { IntegrationDb, IntegrationTables } from './tables.ts';
import { type PostResult, postWebhook } from './transport.ts';

/**
 * Outbound webhooks for appointment events (issue 6, item 8).
 *
 * 1. `enqueue(event)` (subscribed to `AppointmentEvents`): for each active integration of the
 *    practice subscribed to the event's kind whose configuration may be delivered to (it reads
 *    nothing through the gate, or a privacy officer approved exactly this configuration:
 *    approval.ts), one gate call builds the payload from the
 *    integration's allow-list only — reading the patient's name or contact details as the
 *    `system` actor with purpose `operations`, on behalf of the administrator who configured it —
 *    and records the disclosure (HIPAA 164.528). The body is then sealed into `webhook_deliveries`.
 * 2. `deliverDue(now)` sends what is due: signed (`Custos-Signature`, see signature.ts), one
 *    attempt each with a deadline, 2xx = delivered, anything else retried with exponential
 *    backoff and jitter, given up after the last delay. The queue is in the database, so a
 *    restart continues; several servers share it (rows are claimed with SKIP LOCKED and a lease).
 *    A delivery is sent only while its integration still has the configuration it was prepared
 *    under (`config_hash`) and may still be delivered to; otherwise it is given up.
 *
 * Every delivery is recorded as a disclosure, the time-slot-only one too: an opaque id and a
 * time still tell the receiver that someone is a patient of this practice at that hour, and
 * the accounting is what lets the patient learn who was told (docs/integrations.md).
 */

export const DEFAULT_SCHEDULE_MS: readonly number[] = [
  30_000,
  2 * 60_000,
  10 * 60_000,
  60 * 60_000,
  6 * 60 * 60_000,
];

export interface WebhookOptions {
  readonly db: Kysely<CoreDb>;
  readonly keyring: Keyring;
  readonly chart: Chart;
  readonly clock: () => Date;
  readonly receivers: ReceiverPolicy;
  /** Extra trusted CA certificates (PEM) for receivers; Node's roots are always trusted. */
  readonly ca?: string | readonly string[];
  /** Deadline of one attempt (default 10 s). */
  readonly timeoutMs?: number;
  /** Waits after each failed attempt; one more attempt than delays, then it gives up. */
  readonly scheduleMs?: readonly number[];
  /** Up to this fraction is added to each wait, at random (default 0.1: never earlier than scheduled). */
  readonly jitter?: number;
  readonly random?: () => number;
  /** Deliveries claimed per round (default 20). */
  readonly batch?: number;
  /** Ids, counts and codes only. */
  readonly log?: (line: string) => void;
}

/** What one attempt did, for the caller of `deliverDue` (tests, logs). */
export interface AttemptResult {
  readonly deliveryId: string;
  readonly integrationId: string;
  readonly attempt: number;
  readonly outcome: 'delivered' | 'retry' | 'gave-up';
  readonly status: string;
  readonly nextAttemptAt: Date | null;
}

export const payloadAt = (id: string) => ({
  table: 'webhook_deliveries',
  column: 'payload',
  row: id,
  version: 0,
});

type IntegrationRow = {
  id: string;
  name: string;
  url: string;
  fields: string[];
  events: string[];
  purpose: string;
  active: boolean;
  approval: ApprovalState;
  approved_config_hash: string | null;
  created_by: string;
  secret: Buffer;
  id_key: Buffer;
};

export class Webhooks {
  readonly #o: WebhookOptions;
  readonly #db: Kysely<IntegrationDb>;
  readonly #schedule: readonly number[];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();
  #pendingKick = false;

  constructor(options: WebhookOptions) {
    this.#o = options;
    this.#db = options.db.withTables<IntegrationTables>();
    this.#schedule = options.scheduleMs ?? DEFAULT_SCHEDULE_MS;
  }

  /** The listener to subscribe to `AppointmentEvents`. */
  readonly listener: AppointmentListener = async (event) => {
    await this.enqueue(event);
    this.#kick();
  };

  /** Most attempts of one delivery. */
  get maxAttempts(): number {
    return this.#schedule.length + 1;
  }

  /**
   * Queues one delivery per active integration subscribed to `event.kind`, each with its
   * disclosure recorded through the gate. Returns the delivery ids. A failure for one
   * integration is logged (ids only) and does not stop the others.
   */
  async enqueue(event: AppointmentEvent): Promise<string[]> {
    const integrations = await this.#db
      .selectFrom('integrations')
      .select([
        'id',
        'name',
        'url',
        'fields',
        'events',
        'purpose',
        'active',
        'approval',
        'approved_config_hash',
        'created_by',
        'secret',
        'id_key',
      ])
      .where('practice_id', '=', event.practiceId)
      .where('active', '=', true)
      .where('approval', 'in', ['not-required', 'approved'])
      .where(sql<boolean>`${event.kind} = ANY(events)`)
      .orderBy('created_at')
      .execute();
    const ids: string[] = [];
    for (const i of integrations) {
      if (!mayDeliver(i)) {
        // The row says approved, but not for this configuration (or not-required with a gate read):
        // never send on a state the two-person rule did not produce.
        this.#o.log?.(`custos: integration ${i.id} skipped: its configuration is not approved`);
        continue;
      }
      try {
        ids.push(await this.#enqueueOne(event, i));
      } catch (e) {
        this.#o.log?.(
          `custos: webhook for integration ${i.id} (appointment ${event.appointmentId}) not queued: ${(e as Error).name}`,
        );
      }
    }
    return ids;
  }

  async #enqueueOne(event: AppointmentEvent, i: IntegrationRow): Promise<string> {
    const deliveryId = randomUUID();
    const fields = i.fields as AllowedField[];
    const values: Record<string, string | null> = {};
    for (const f of fields) {
      switch (f) {
        case 'start':
          values.start = event.start.toISOString();
          break;
        case 'end':
          values.end = event.end.toISOString();
          break;
        case 'appointmentId':
          values.appointmentId = this.opaqueId(i, event.appointmentId);
          break;
        case 'room':
          values.room = event.room;
          break;
        default:
          // Read through the gate below.
          break;
      }
    }
    const ctx = systemContext({
      practiceId: event.practiceId,
      purpose: 'operations',
      requestId: deliveryId,
      onBehalfOf: i.created_by,
    });
    const kind = `appointment.${event.kind}`;
    const disclosed = await this.#o.chart.recordDisclosure(ctx, event.patientId, {
      recipient: { id: i.id, name: i.name },
      purpose: i.purpose,
      event: kind,
      deliveryId,
      values,
      read: fields.filter(isGateRead),
      clinicianId: event.clinicianId,
    });
    // Keys in the configured order; exactly the allow-list, nothing else.
    const data = Object.fromEntries(fields.map((f) => [f, disclosed.fields[f] ?? null]));
    const body = JSON.stringify({ id: deliveryId, event: kind, occurredAt: event.at.toISOString(), data });
    const now = this.#o.clock();
    await this.#db
      .insertInto('webhook_deliveries')
      .values({
        id: deliveryId,
        practice_id: event.practiceId,
        integration_id: i.id,
        event: event.kind,
        appointment_id: event.appointmentId,
        payload: this.#o.keyring.sealSecret(payloadAt(deliveryId), Buffer.from(body, 'utf8')),
        attempts: 0,
        next_attempt_at: now,
        last_status: null,
        last_attempt_at: null,
        created_at: now,
        delivered_at: null,
        gave_up_at: null,
        config_hash: configHash(i),
      })
      .execute();
    return deliveryId;
  }

  /**
   * The appointment id a receiver sees: HMAC-SHA256 under the integration's own key, so it is
   * stable for that receiver (a reschedule or cancellation names the same appointment), differs
   * between receivers (they cannot join their data), and is not the internal uuid.
   */
  opaqueId(i: { id: string; id_key: Buffer }, appointmentId: string): string {
    const key = this.#o.keyring.openSecret(idKeyAt(i.id), i.id_key);
    try {
      return `apt_${createHmac('sha256', key).update(appointmentId, 'utf8').digest().subarray(0, 16).toString('base64url')}`;
    } finally {
      key.fill(0);
    }
  }

  /** The delay before attempt `attempts + 1` after `attempts` failures, with jitter. */
  delayAfter(attempts: number): number {
    const base = this.#schedule[Math.min(attempts, this.#schedule.length) - 1] ?? 0;
    const jitter = this.#o.jitter ?? 0.1;
    return Math.round(base * (1 + jitter * (this.#o.random ?? Math.random)()));
  }

  /**
   * Sends every delivery due at `now` (one attempt each) and records the outcome. Safe to run on
   * several servers at once: a claimed row is leased for the attempt's deadline plus a minute, so
   * a crash mid-attempt only delays it.
   */
  async deliverDue(now: Date = this.#o.clock()): Promise<AttemptResult[]> {
    const timeoutMs = this.#o.timeoutMs ?? 10_000;
    const lease = new Date(now.getTime() + timeoutMs + 60_000);
    const batch = this.#o.batch ?? 20;
    const claimed = await sql<{
      id: string;
      integration_id: string;
      event: string;
      payload: Buffer | null;
      attempts: number;
      config_hash: string | null;
    }>`
      UPDATE webhook_deliveries SET next_attempt_at = ${lease}
      WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ${now}
        ORDER BY next_attempt_at, id
        LIMIT ${batch}
        FOR UPDATE SKIP LOCKED)
      RETURNING id, integration_id, event, payload, attempts, config_hash`.execute(this.#db);
    // All claimed rows at once, so every attempt ends within its lease (one deadline each).
    return Promise.all(
      claimed.rows.map(async (d) => {
        try {
          return await this.#attempt(d, now, timeoutMs);
        } catch (e) {
          // A local fault (a sealed value that does not open, a lost connection): retried later.
          this.#o.log?.(`custos: webhook delivery ${d.id} failed locally (${(e as Error).name})`);
          const attempt = d.attempts + 1;
          return this.#record(d, attempt, now, {
            kind: attempt >= this.maxAttempts ? 'stop' : 'retry',
            status: 'internal-error',
          });
        }
      }),
    );
  }

  async #attempt(
    d: {
      id: string;
      integration_id: string;
      event: string;
      payload: Buffer | null;
      attempts: number;
      config_hash: string | null;
    },
    now: Date,
    timeoutMs: number,
  ): Promise<AttemptResult> {
    const i = await this.#db
      .selectFrom('integrations')
      .select([
        'id',
        'url',
        'active',
        'secret',
        'fields',
        'events',
        'purpose',
        'approval',
        'approved_config_hash',
      ])
      .where('id', '=', d.integration_id)
      .executeTakeFirst();
    const attempt = d.attempts + 1;
    let result: PostResult;
    if (!i?.active || d.payload === null) {
      return this.#record(d, attempt, now, { kind: 'stop', status: 'integration-inactive' });
    }
    if (!mayDeliver(i)) {
      return this.#record(d, attempt, now, { kind: 'stop', status: 'approval-required' });
    }
    // Prepared under another configuration (another URL, fields, events or purpose): not for this one.
    // A delivery queued before migration 017 has no hash; it goes only where no approval is needed.
    if (d.config_hash === null ? i.approval !== 'not-required' : d.config_hash !== configHash(i)) {
      return this.#record(d, attempt, now, { kind: 'stop', status: 'configuration-changed' });
    }
    const body = this.#o.keyring.openSecret(payloadAt(d.id), d.payload).toString('utf8');
    const secret = this.#o.keyring.openSecret(secretAt(i.id), i.secret).toString('utf8');
    try {
      result = await postWebhook({
        url: i.url,
        body,
        headers: {
          [SIGNATURE_HEADER]: signWebhook(secret, body, now),
          [DELIVERY_HEADER]: d.id,
          [EVENT_HEADER]: `appointment.${d.event}`,
        },
        timeoutMs,
        ca: this.#o.ca,
        allowPrivateAddresses: this.#o.receivers.allowPrivateAddresses,
      });
    } catch {
      // postWebhook resolves on every network outcome; anything thrown is a local fault.
      result = { ok: false, error: 'connection-error' };
    }
    const status = 'status' in result ? String(result.status) : result.error;
    if (result.ok) {
      return this.#record(d, attempt, now, { kind: 'delivered', status });
    }
    return this.#record(d, attempt, now, { kind: attempt >= this.maxAttempts ? 'stop' : 'retry', status });
  }

  async #record(
    d: { id: string; integration_id: string },
    attempt: number,
    now: Date,
    r: { kind: 'delivered' | 'retry' | 'stop'; status: string },
  ): Promise<AttemptResult> {
    // Times are the attempt's `now` (the injected clock in tests), so a delivery's history is consistent.
    const at = now;
    const next = r.kind === 'retry' ? new Date(now.getTime() + this.delayAfter(attempt)) : null;
    await this.#db
      .updateTable('webhook_deliveries')
      .set({
        attempts: attempt,
        last_status: r.status,
        last_attempt_at: now,
        next_attempt_at: next,
        ...(r.kind === 'delivered' ? { delivered_at: at, payload: null } : {}),
        ...(r.kind === 'stop' ? { gave_up_at: at, payload: null } : {}),
      })
      .where('id', '=', d.id)
      .execute();
    if (r.kind === 'stop') {
      this.#o.log?.(
        `custos: webhook delivery ${d.id} to integration ${d.integration_id} given up after ${attempt} attempt(s) (${r.status})`,
      );
    }
    return {
      deliveryId: d.id,
      integrationId: d.integration_id,
      attempt,
      outcome: r.kind === 'delivered' ? 'delivered' : r.kind === 'retry' ? 'retry' : 'gave-up',
      status: r.status,
      nextAttemptAt: next,
    };
  }

  /** Runs `deliverDue` every `intervalMs` (default 5 s) until `stop()`; `custos serve` starts it. */
  start(intervalMs = 5_000): void {
    if (this.#timer) {
      return;
    }
    this.#timer = setInterval(() => this.#kick(), intervalMs);
    this.#timer.unref();
    this.#kick();
  }

  async stop(): Promise<void> {
    if (this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    await this.#running;
  }

  /** One round now (after the running one), when the loop runs; rounds never overlap. */
  #kick(): void {
    if (!this.#timer || this.#pendingKick) {
      return;
    }
    this.#pendingKick = true;
    this.#running = this.#running.then(async () => {
      this.#pendingKick = false;
      try {
        await this.deliverDue(this.#o.clock());
      } catch (e) {
        this.#o.log?.(`custos: webhook round failed (${(e as Error).name}); it runs again shortly`);
      }
    });
  }
}
