import { type Kysely, sql } from 'kysely';

/**
 * Disclosures and integrations (issue 6, item 8).
 *
 * - `integrations`: third-party receivers of appointment webhooks. The signing secret and the key
 *   of the opaque appointment ids are sealed under the key-encryption key; the field allow-list,
 *   the subscribed events and the stated purpose are configuration, not health data.
 * - `webhook_deliveries`: the durable delivery queue (a restart continues where it stopped). The
 *   payload can name the patient, so it is sealed, and it is cleared once delivered or given up.
 * - `disclosures`: the accounting of disclosures (HIPAA 45 CFR 164.528, ONC 170.315(d)(11)). A
 *   health-data table (src/chart/tables.ts): a pseudonym, the recipient, the purpose and what was
 *   sent, sealed with the patient's data key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE integrations (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      name text NOT NULL,
      url text NOT NULL CHECK (url LIKE 'https://%'),
      secret bytea NOT NULL,
      id_key bytea NOT NULL,
      fields text[] NOT NULL,
      events text[] NOT NULL,
      purpose text NOT NULL,
      active boolean NOT NULL DEFAULT true,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      updated_at timestamptz NOT NULL
    );
    SELECT custos_isolate('integrations');

    CREATE TABLE webhook_deliveries (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      integration_id uuid NOT NULL REFERENCES integrations(id),
      event text NOT NULL,
      appointment_id text NOT NULL,
      payload bytea,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz,
      last_status text,
      last_attempt_at timestamptz,
      created_at timestamptz NOT NULL,
      delivered_at timestamptz,
      gave_up_at timestamptz
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
      WHERE delivered_at IS NULL AND gave_up_at IS NULL;
    CREATE INDEX webhook_deliveries_integration ON webhook_deliveries (integration_id, created_at);
    SELECT custos_isolate('webhook_deliveries');

    CREATE TABLE disclosures (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      pseudonym text NOT NULL,
      recipient_id text,
      recipient_name text NOT NULL,
      purpose text NOT NULL,
      description bytea NOT NULL,
      delivery_id uuid,
      disclosed_at timestamptz NOT NULL,
      disclosed_by text NOT NULL
    );
    CREATE INDEX disclosures_pseudonym ON disclosures (pseudonym, disclosed_at);
    SELECT custos_isolate('disclosures');
  `.execute(db);
}
