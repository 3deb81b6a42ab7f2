import type { Selectable } from 'kysely';
import { type ApprovalState, type IntegrationStatus, integrationStatus, needsApproval } from './approval.ts';
import type { IntegrationTables } from './tables.ts';

/** What the integration routes answer: configuration and delivery status, never a secret or a payload. */

export type IntegrationRow = Selectable<IntegrationTables['integrations']>;

/** The two-person rule as the administrator and the officer see it. */
export interface ApprovalView {
  readonly state: ApprovalState;
  /** The allow-list reads about the patient through the gate: a privacy officer must approve it. */
  readonly required: boolean;
  /** Who made the change that awaits (or got) a decision, and when. */
  readonly submittedBy: string | null;
  readonly submittedAt: Date | null;
  readonly reviewedBy: string | null;
  readonly reviewedAt: Date | null;
  /** Why it was rejected. */
  readonly reason: string | null;
}

export interface IntegrationView {
  readonly id: string;
  readonly name: string;
  readonly url: string;
  readonly fields: readonly string[];
  readonly events: readonly string[];
  readonly purpose: string;
  /** The administrator's on/off switch. */
  readonly active: boolean;
  /** `active` only when it is switched on and needs no approval or has it. */
  readonly status: IntegrationStatus;
  readonly approval: ApprovalView;
  readonly version: number;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly updatedBy: string;
  readonly updatedAt: Date;
}

export interface DeliveryView {
  readonly id: string;
  readonly integrationId: string;
  readonly event: string;
  readonly appointmentId: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatus: string | null;
  readonly lastAttemptAt: Date | null;
  readonly nextAttemptAt: Date | null;
  readonly createdAt: Date;
  readonly deliveredAt: Date | null;
  readonly gaveUpAt: Date | null;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export const deliveryStatus = (r: { delivered_at: Date | null; gave_up_at: Date | null }): DeliveryStatus =>
  r.delivered_at ? 'delivered' : r.gave_up_at ? 'failed' : 'pending';

/** An integration as the administrator and the officer see it: never its secret or id key. */
export const integrationView = (r: IntegrationRow): IntegrationView => ({
  id: r.id,
  name: r.name,
  url: r.url,
  fields: r.fields,
  events: r.events,
  purpose: r.purpose,
  active: r.active,
  status: integrationStatus(r),
  approval: {
    state: r.approval,
    required: needsApproval(r.fields),
    submittedBy: r.submitted_by,
    submittedAt: r.submitted_at,
    reviewedBy: r.reviewed_by,
    reviewedAt: r.reviewed_at,
    reason: r.review_reason,
  },
  version: r.version,
  createdBy: r.created_by,
  createdAt: r.created_at,
  updatedBy: r.updated_by,
  updatedAt: r.updated_at,
});

/** What the audit entries say about a configuration: the allow-list, events and host (not the path). */
export const configDetail = (
  r: Pick<IntegrationRow, 'fields' | 'events' | 'url' | 'version' | 'approval'>,
) => ({
  fields: r.fields,
  events: r.events,
  host: new URL(r.url).host,
  version: r.version,
  approval: r.approval,
});

/** A delivery as the administrator sees it: status and attempts, never the payload. */
export const deliveryView = (
  r: Pick<
    Selectable<IntegrationTables['webhook_deliveries']>,
    | 'id'
    | 'integration_id'
    | 'event'
    | 'appointment_id'
    | 'attempts'
    | 'last_status'
    | 'last_attempt_at'
    | 'next_attempt_at'
    | 'created_at'
    | 'delivered_at'
    | 'gave_up_at'
  >,
): DeliveryView => ({
  id: r.id,
  integrationId: r.integration_id,
  event: r.event,
  appointmentId: r.appointment_id,
  status: deliveryStatus(r),
  attempts: r.attempts,
  lastStatus: r.last_status,
  lastAttemptAt: r.last_attempt_at,
  nextAttemptAt: r.delivered_at || r.gave_up_at ? null : r.next_attempt_at,
  createdAt: r.created_at,
  deliveredAt: r.delivered_at,
  gaveUpAt: r.gave_up_at,
});
