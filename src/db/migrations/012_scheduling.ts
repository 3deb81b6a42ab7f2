import { type Kysely, sql } from 'kysely';

/**
 * Scheduling (issue 6 item 5): clinicians' working hours, appointments, the waiting list and the
 * reminders' bookkeeping.
 *
 * An appointment says that a patient sees a clinician at a time, which is health data (seeing a
 * therapist), so it is kept like a clinical record: the patient's pseudonym (never the patient id),
 * and the reason for the visit sealed with the patient's data key. Working hours hold no patient.
 *
 * No double booking, in the database itself: a trigger takes a transaction-scoped advisory lock
 * per clinician and per room, then refuses an occupying (booked or completed) appointment that
 * overlaps another of the same clinician or room (SQLSTATE 23P01, constraint
 * `appointments_clinician_overlap` or `appointments_room_overlap`). The lock makes the check
 * race-free under READ COMMITTED, which Custos uses: a second writer waits for the first to commit
 * and its check then sees the first's row (each statement of a PL/pgSQL function takes a new
 * snapshot). Locks are taken clinician first, then room, so two writers never wait on each other
 * in a cycle. The service takes the same locks before it checks, to report every conflict at once.
 *
 * Rejected: an exclusion constraint `EXCLUDE USING gist (clinician_id WITH =, tstzrange(...) WITH
 * &&)`. It needs the btree_gist extension. PostgreSQL 15 has it (contrib, a trusted extension) and
 * PGlite ships it, but PGlite loads an extension only when the instance is created with it, so
 * every place that opens PGlite (the server, the CLI, backups, every test helper) and every
 * existing data folder would have to load it forever, or the database would not open. The trigger
 * works on both engines with what they have.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE working_hours (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      clinician_id uuid NOT NULL,
      weekday smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
      starts text NOT NULL CHECK (starts ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'),
      ends text NOT NULL CHECK (ends ~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'),
      room text CHECK (char_length(room) BETWEEN 1 AND 64),
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      CHECK (ends > starts),
      FOREIGN KEY (clinician_id, practice_id) REFERENCES users (id, practice_id)
    );
    CREATE INDEX working_hours_clinician ON working_hours (clinician_id, weekday);
    SELECT custos_isolate('working_hours');

    CREATE TABLE appointments (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      pseudonym text NOT NULL,
      clinician_id uuid NOT NULL,
      room text CHECK (char_length(room) BETWEEN 1 AND 64),
      starts_at timestamptz NOT NULL,
      ends_at timestamptz NOT NULL,
      status text NOT NULL CHECK (status IN ('booked', 'cancelled', 'no-show', 'completed')),
      series_id uuid,
      version integer NOT NULL CHECK (version >= 1),
      -- The reason for the visit, sealed with the patient's data key (clinical: front desk never sees it).
      reason bytea,
      cancel_code text,
      reminder_sent_at timestamptz,
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      CHECK (ends_at > starts_at),
      FOREIGN KEY (clinician_id, practice_id) REFERENCES users (id, practice_id)
    );
    CREATE INDEX appointments_clinician ON appointments (clinician_id, starts_at);
    CREATE INDEX appointments_room ON appointments (practice_id, room, starts_at) WHERE room IS NOT NULL;
    CREATE INDEX appointments_pseudonym ON appointments (pseudonym, starts_at);
    CREATE INDEX appointments_series ON appointments (series_id) WHERE series_id IS NOT NULL;
    CREATE INDEX appointments_reminders ON appointments (starts_at)
      WHERE status = 'booked' AND reminder_sent_at IS NULL;
    SELECT custos_isolate('appointments');

    CREATE TABLE waiting_list_entries (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      pseudonym text NOT NULL,
      -- NULL: any clinician.
      clinician_id uuid,
      -- A note sealed with the patient's data key (read like the reason for a visit).
      note bytea,
      -- Preferred weekdays and local times: {"weekdays": ["mon"], "from": "09:00", "to": "12:00"}.
      preferred jsonb NOT NULL DEFAULT '{}'::jsonb,
      status text NOT NULL CHECK (status IN ('waiting', 'booked', 'removed')),
      appointment_id uuid REFERENCES appointments(id),
      created_at timestamptz NOT NULL,
      created_by text NOT NULL,
      updated_at timestamptz NOT NULL,
      updated_by text NOT NULL,
      FOREIGN KEY (clinician_id, practice_id) REFERENCES users (id, practice_id)
    );
    CREATE INDEX waiting_list_waiting ON waiting_list_entries (practice_id, created_at) WHERE status = 'waiting';
    CREATE INDEX waiting_list_pseudonym ON waiting_list_entries (pseudonym);
    SELECT custos_isolate('waiting_list_entries');

    -- The advisory locks a booking takes: clinician first, then room (a fixed order, no deadlock).
    CREATE FUNCTION custos_appointment_lock(p uuid, clinician uuid, room text) RETURNS void
    LANGUAGE plpgsql AS $f$
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtextextended('custos.appointment.clinician:' || clinician::text, 0));
      IF room IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('custos.appointment.room:' || p::text || ':' || room, 0));
      END IF;
    END $f$;

    CREATE FUNCTION custos_appointment_guard() RETURNS trigger LANGUAGE plpgsql AS $f$
    BEGIN
      IF NEW.status NOT IN ('booked', 'completed') THEN
        RETURN NEW;
      END IF;
      PERFORM custos_appointment_lock(NEW.practice_id, NEW.clinician_id, NEW.room);
      IF EXISTS (
        SELECT 1 FROM appointments a
         WHERE a.clinician_id = NEW.clinician_id AND a.id <> NEW.id
           AND a.status IN ('booked', 'completed')
           AND a.starts_at < NEW.ends_at AND a.ends_at > NEW.starts_at) THEN
        RAISE EXCEPTION 'the clinician has another appointment at that time'
          USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'appointments_clinician_overlap';
      END IF;
      IF NEW.room IS NOT NULL AND EXISTS (
        SELECT 1 FROM appointments a
         WHERE a.practice_id = NEW.practice_id AND a.room = NEW.room AND a.id <> NEW.id
           AND a.status IN ('booked', 'completed')
           AND a.starts_at < NEW.ends_at AND a.ends_at > NEW.starts_at) THEN
        RAISE EXCEPTION 'the room is taken at that time'
          USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'appointments_room_overlap';
      END IF;
      RETURN NEW;
    END $f$;

    CREATE TRIGGER appointments_no_double_booking
      BEFORE INSERT OR UPDATE OF starts_at, ends_at, clinician_id, room, status ON appointments
      FOR EACH ROW EXECUTE FUNCTION custos_appointment_guard();
  `.execute(db);
}
