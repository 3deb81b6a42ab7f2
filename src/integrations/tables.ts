import type { ColumnType } from 'kysely';
import type { CoreDb } from '../db/schema.ts';
import type { ApprovalState } from './approval.ts';

/**
 * The integration tables (migration 014). No health data in the clear: the secret, the id key
 * and pending payloads are sealed under the key-encryption key; a payload is cleared once it is
 * delivered or given up. The accounting of disclosures itself lives in src/chart (`disclosures`).
 */
export type IntegrationTables = {
  integrations: {
    id: string;
    practice_id: string;
    name: string;
    /** https:// only. */
    url: string;
    /** The HMAC signing secret, sealed (`sealSecret`); shown once, at creation. */
    secret: Buffer;
    /** Key of the opaque per-integration appointment ids, sealed. */
    id_key: Buffer;
    /** The field allow-list. */
    fields: string[];
    /** Appointment event kinds subscribed. */
    events: string[];
    purpose: string;
    active: ColumnType<boolean, boolean | undefined, boolean>;
    created_by: string;
    created_at: Date;
    updated_by: string;
    updated_at: Date;
    /** Bumped on every change (migration 017). */
    version: ColumnType<number, number | undefined, number>;
    /** The two-person rule (approval.ts): `not-required`, `pending-approval`, `approved`, `rejected`. */
    approval: ColumnType<ApprovalState, ApprovalState | undefined, ApprovalState>;
    /** The administrator whose change awaits approval (never its approver), and when. */
    submitted_by: string | null;
    submitted_at: Date | null;
    /** The privacy officer's decision; the reason of a rejection is about the configuration only. */
    reviewed_by: string | null;
    reviewed_at: Date | null;
    review_reason: string | null;
    /** `configHash` of the configuration approved; nothing is sent unless the current one matches. */
    approved_config_hash: string | null;
  };
  webhook_deliveries: {
    id: string;
    practice_id: string;
    integration_id: string;
    event: string;
    appointment_id: string;
    /** The JSON body, sealed; null once delivered or given up. */
    payload: Buffer | null;
    attempts: ColumnType<number, number | undefined, number>;
    next_attempt_at: Date | null;
    /** `200`, `500`, `timeout`, `connection-error`, … of the last attempt. */
    last_status: string | null;
    last_attempt_at: Date | null;
    created_at: Date;
    delivered_at: Date | null;
    gave_up_at: Date | null;
    /** `configHash` of the integration when the delivery was prepared; sent only under that one. */
    config_hash: string | null;
  };
};

export type IntegrationDb = CoreDb & IntegrationTables;
