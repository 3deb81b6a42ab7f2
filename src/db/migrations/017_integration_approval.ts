import { type Kysely, sql } from 'kysely';

/**
 * The two-person rule for integrations that disclose patient identity (docs/integrations.md).
 *
 * `integrations` gains:
 * - `version`: bumped on every change, so the privacy officer approves the version they reviewed;
 * - `approval`: `not-required` (the allow-list holds nothing read through the gate),
 *   `pending-approval`, `approved` or `rejected`;
 * - `submitted_by` / `submitted_at`: the administrator whose change awaits approval (who may not
 *   approve it), and when;
 * - `reviewed_by` / `reviewed_at` / `review_reason`: the privacy officer's decision (the reason of
 *   a rejection, about the configuration, never health data);
 * - `approved_config_hash`: SHA-256 of the approved URL, allow-list, events and purpose. Nothing is
 *   delivered unless the current configuration hashes to it, so an approval never covers a
 *   configuration the officer did not see.
 *
 * `webhook_deliveries.config_hash` names the configuration a delivery was prepared under: it is
 * sent only while the integration still has that configuration.
 *
 * Existing integrations whose allow-list reads patient data through the gate wait for approval
 * from now on, and their queued deliveries are given up: approval is not granted by an upgrade.
 * The field list is frozen here on purpose (a migration does not import application code).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE integrations
      ADD COLUMN version integer NOT NULL DEFAULT 1,
      ADD COLUMN approval text NOT NULL DEFAULT 'not-required'
        CHECK (approval IN ('not-required', 'pending-approval', 'approved', 'rejected')),
      ADD COLUMN submitted_by text,
      ADD COLUMN submitted_at timestamptz,
      ADD COLUMN reviewed_by text,
      ADD COLUMN reviewed_at timestamptz,
      ADD COLUMN review_reason text,
      ADD COLUMN approved_config_hash text;
    ALTER TABLE integrations
      ADD CONSTRAINT integrations_approved_hash
        CHECK ((approval = 'approved') = (approved_config_hash IS NOT NULL)),
      ADD CONSTRAINT integrations_pending_submitter
        CHECK (approval <> 'pending-approval' OR submitted_by IS NOT NULL);
    ALTER TABLE webhook_deliveries ADD COLUMN config_hash text;

    UPDATE integrations
      SET approval = 'pending-approval', submitted_by = updated_by, submitted_at = updated_at
      WHERE fields && ARRAY['patientName', 'patientEmail', 'patientPhone', 'clinicianName']::text[];
    UPDATE webhook_deliveries d
      SET gave_up_at = now(), payload = NULL, next_attempt_at = NULL, last_status = 'approval-required'
      FROM integrations i
      WHERE i.id = d.integration_id AND i.approval = 'pending-approval'
        AND d.delivered_at IS NULL AND d.gave_up_at IS NULL;
    CREATE INDEX integrations_pending ON integrations (practice_id, submitted_at)
      WHERE approval = 'pending-approval';
  `.execute(db);
}
