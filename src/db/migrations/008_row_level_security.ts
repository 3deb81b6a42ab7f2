import { type Kysely, sql } from 'kysely';

/**
 * Practice isolation with row-level security (issue 5 item 7; DESIGN.md "Scale"). One database
 * may hold several practices; the application runs as the role `custos_app` with the setting
 * `custos.practice_id` naming its practice, and a policy on every table that has `practice_id`
 * shows and accepts that practice's rows only, so a query that forgets its practice filter still
 * sees no other practice. An unset setting sees nothing.
 *
 * 1. `practice_id` on the tables that lacked it (versions, enrollments, passkeys), taken from the
 *    parent row and held equal to it by a foreign key on (parent id, practice_id).
 * 2. The role `custos_app` (NOLOGIN; the server switches to it, see src/db/database.ts), its
 *    privileges, and the same privileges for tables the owner creates later.
 * 3. `custos_isolate(table)`: enables and forces row-level security on a table and creates the
 *    policy `practice_isolation`. Applied here to every table with `practice_id` (and to
 *    `practices` on `id`); a later migration that adds such a table calls
 *    `SELECT custos_isolate('new_table')`, and `src/db/practice-isolation.int.test.ts` fails until
 *    it does.
 *
 * Not isolated, on purpose:
 * - `audit_entries`: one database-wide, tamper-evident log. The sealer hashes every practice's
 *   entries in sequence order and `verify` recomputes them all; a policy would need a switch any
 *   statement could flip (so no protection), and hiding rows from the sealer would seal gaps.
 *   Entries hold ids and pseudonyms only; reports filter by practice explicitly.
 * - `audit_checkpoints` (the signed tree heads of that log), `guard_events` and `ip_blocks`
 *   (per-server network defense: an address attacking one practice is blocked for all),
 *   `custos_meta` (key check values, the default practice) and the migration bookkeeping: none
 *   carries practice data.
 *
 * Role creation is cluster-wide and tests create many databases on one cluster at once: a
 * concurrent creator shows up as duplicate_object or unique_violation, both caught.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE patients ADD CONSTRAINT patients_id_practice UNIQUE (id, practice_id);
    ALTER TABLE records ADD CONSTRAINT records_id_practice UNIQUE (id, practice_id);
    ALTER TABLE users ADD CONSTRAINT users_id_practice UNIQUE (id, practice_id);

    ALTER TABLE patient_versions ADD COLUMN practice_id uuid;
    UPDATE patient_versions v SET practice_id = p.practice_id FROM patients p WHERE p.id = v.patient_id;
    ALTER TABLE patient_versions ALTER COLUMN practice_id SET NOT NULL,
      ADD CONSTRAINT patient_versions_practice FOREIGN KEY (practice_id) REFERENCES practices (id),
      ADD CONSTRAINT patient_versions_patient_practice FOREIGN KEY (patient_id, practice_id)
        REFERENCES patients (id, practice_id);

    ALTER TABLE record_versions ADD COLUMN practice_id uuid;
    UPDATE record_versions v SET practice_id = r.practice_id FROM records r WHERE r.id = v.record_id;
    ALTER TABLE record_versions ALTER COLUMN practice_id SET NOT NULL,
      ADD CONSTRAINT record_versions_practice FOREIGN KEY (practice_id) REFERENCES practices (id),
      ADD CONSTRAINT record_versions_record_practice FOREIGN KEY (record_id, practice_id)
        REFERENCES records (id, practice_id);

    ALTER TABLE enrollments ADD COLUMN practice_id uuid;
    UPDATE enrollments e SET practice_id = u.practice_id FROM users u WHERE u.id = e.user_id;
    ALTER TABLE enrollments ALTER COLUMN practice_id SET NOT NULL,
      ADD CONSTRAINT enrollments_practice FOREIGN KEY (practice_id) REFERENCES practices (id),
      ADD CONSTRAINT enrollments_user_practice FOREIGN KEY (user_id, practice_id)
        REFERENCES users (id, practice_id);

    ALTER TABLE webauthn_credentials ADD COLUMN practice_id uuid;
    UPDATE webauthn_credentials w SET practice_id = u.practice_id FROM users u WHERE u.id = w.user_id;
    ALTER TABLE webauthn_credentials ALTER COLUMN practice_id SET NOT NULL,
      ADD CONSTRAINT webauthn_credentials_practice FOREIGN KEY (practice_id) REFERENCES practices (id),
      ADD CONSTRAINT webauthn_credentials_user_practice FOREIGN KEY (user_id, practice_id)
        REFERENCES users (id, practice_id);

    DO $$
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'custos_app') THEN
        BEGIN
          CREATE ROLE custos_app NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL; -- another database on this cluster created it at the same moment: it exists now
        END;
      END IF;
      -- A superuser may SET ROLE to anyone; an owner with CREATEROLE needs the membership.
      IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
         AND NOT pg_has_role(current_user, 'custos_app', 'MEMBER') THEN
        BEGIN
          EXECUTE format('GRANT custos_app TO %I', current_user);
        EXCEPTION WHEN unique_violation THEN
          NULL; -- granted concurrently
        END;
      END IF;

      -- Data manipulation on every table, never DDL, TRUNCATE or ownership. The audit tables are
      -- append-only for the application (their triggers also refuse the owner); the migration
      -- bookkeeping is the owner's alone.
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO custos_app', current_schema());
      EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO custos_app', current_schema());
      EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO custos_app', current_schema());
      EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO custos_app', current_schema());
      EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO custos_app', current_schema());
    END $$;
    REVOKE UPDATE, DELETE ON audit_entries, audit_checkpoints FROM custos_app;
    REVOKE ALL ON custos_migrations, custos_migrations_lock FROM custos_app;

    -- Enables and forces (the table owner too, unless superuser or BYPASSRLS) row-level security
    -- on a table and installs the one policy keyed on custos.practice_id. Idempotent.
    CREATE FUNCTION custos_isolate(t regclass) RETURNS void LANGUAGE plpgsql AS $f$
    DECLARE
      col text := CASE WHEN t = 'practices'::regclass THEN 'id' ELSE 'practice_id' END;
    BEGIN
      EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t);
      EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t);
      EXECUTE format('DROP POLICY IF EXISTS practice_isolation ON %s', t);
      EXECUTE format(
        'CREATE POLICY practice_isolation ON %1$s'
        ' USING (%2$I = nullif(current_setting(''custos.practice_id'', true), '''')::uuid)'
        ' WITH CHECK (%2$I = nullif(current_setting(''custos.practice_id'', true), '''')::uuid)',
        t, col);
    END $f$;
    REVOKE ALL ON FUNCTION custos_isolate(regclass) FROM PUBLIC;

    DO $$
    DECLARE
      r record;
    BEGIN
      FOR r IN
        SELECT c.oid::regclass AS t
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'practice_id' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'audit_entries'
        ORDER BY c.relname
      LOOP
        PERFORM custos_isolate(r.t);
      END LOOP;
      PERFORM custos_isolate('practices');
    END $$;
  `.execute(db);
}
