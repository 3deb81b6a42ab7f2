import { type Kysely, sql } from 'kysely';

/**
 * The initial schema. Plain SQL that runs unchanged on PostgreSQL 15 and on PGlite
 * (PostgreSQL 18): no extensions, no engine-specific types.
 *
 * Health-data tables (patients, patient_versions, patient_links, patient_index, records,
 * record_versions) hold ciphertext (bytea), blind indexes (bytea) and pseudonyms only.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE custos_meta (key text PRIMARY KEY, value text NOT NULL);

    CREATE TABLE practices (id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL);

    CREATE TABLE data_keys (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      kek_id text NOT NULL,
      wrapped bytea NOT NULL,
      created_at timestamptz NOT NULL
    );

    CREATE TABLE patients (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      current_version integer NOT NULL,
      active boolean NOT NULL DEFAULT true,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    );
    CREATE TABLE patient_versions (
      patient_id uuid NOT NULL REFERENCES patients(id),
      version integer NOT NULL,
      body bytea NOT NULL,
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      PRIMARY KEY (patient_id, version)
    );
    CREATE TABLE patient_links (
      patient_id uuid PRIMARY KEY REFERENCES patients(id),
      practice_id uuid NOT NULL REFERENCES practices(id),
      link bytea NOT NULL,
      pseudonym_index bytea NOT NULL UNIQUE
    );
    CREATE TABLE patient_index (
      practice_id uuid NOT NULL REFERENCES practices(id),
      kind text NOT NULL,
      hash bytea NOT NULL,
      patient_id uuid NOT NULL REFERENCES patients(id)
    );
    CREATE INDEX patient_index_lookup ON patient_index (practice_id, kind, hash);
    CREATE INDEX patient_index_patient ON patient_index (patient_id);

    CREATE TABLE records (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      pseudonym text NOT NULL,
      kind text NOT NULL,
      sensitivity text NOT NULL,
      author_id text NOT NULL,
      status text NOT NULL,
      current_version integer NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    );
    CREATE INDEX records_pseudonym ON records (pseudonym, kind);
    CREATE TABLE record_versions (
      record_id uuid NOT NULL REFERENCES records(id),
      version integer NOT NULL,
      body bytea NOT NULL,
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      PRIMARY KEY (record_id, version)
    );

    CREATE TABLE care_team (
      practice_id uuid NOT NULL REFERENCES practices(id),
      patient_id uuid NOT NULL REFERENCES patients(id),
      user_id text NOT NULL,
      starts_at timestamptz NOT NULL,
      ends_at timestamptz,
      added_by text NOT NULL
    );
    CREATE INDEX care_team_lookup ON care_team (patient_id, user_id);

    CREATE TABLE audit_entries (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      at timestamptz NOT NULL,
      practice_id uuid NOT NULL,
      actor_kind text NOT NULL,
      actor_id text NOT NULL,
      role text NOT NULL,
      on_behalf_of text,
      action text NOT NULL,
      resource_type text NOT NULL,
      resource_id text,
      patient_pseudonym text,
      purpose text NOT NULL,
      outcome text NOT NULL,
      reason text,
      client_address text,
      user_agent_hash text,
      session_id text,
      request_id text,
      detail jsonb
    );
    CREATE INDEX audit_entries_patient ON audit_entries (patient_pseudonym, seq);
    CREATE INDEX audit_entries_actor ON audit_entries (actor_id, seq);

    -- Append-only in the database itself (DESIGN.md invariant 4).
    CREATE FUNCTION custos_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE OR DELETE ON audit_entries
      FOR EACH ROW EXECUTE FUNCTION custos_audit_append_only();
    CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
      FOR EACH STATEMENT EXECUTE FUNCTION custos_audit_append_only();
  `.execute(db);
}
