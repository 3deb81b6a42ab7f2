import { type Kysely, sql } from 'kysely';

/**
 * Secure messages between staff and a patient (issue 6, item 7): threads per patient, messages in
 * a thread, and per-reader read markers (unread counts for the staff inbox and, later, the
 * portal).
 *
 * Like every clinical row, these carry the patient's pseudonym, never a patient id: a thread's
 * subject and a message's text are sealed with the patient's data key (clinical key id), bound to
 * table, column and row. "Who" columns hold a staff user id, `system`, or the word `patient` for
 * the thread's patient, never the patient's id, which would link the pseudonym to the patient in
 * the clear.
 *
 * `seq` numbers the messages of a thread 1, 2, 3 ...; the thread row's `message_count` hands them
 * out (an UPDATE ... RETURNING, so concurrent posts serialize on the thread row). The thread keeps
 * the seq of the last message from each side, so "has the patient written since I last read" is
 * a comparison on the thread row, not a scan of its messages.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE message_threads (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      pseudonym text NOT NULL,
      subject bytea NOT NULL,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL,
      closed_at timestamptz,
      closed_by text,
      last_message_at timestamptz NOT NULL,
      message_count integer NOT NULL CHECK (message_count >= 0),
      last_patient_seq integer NOT NULL DEFAULT 0,
      last_staff_seq integer NOT NULL DEFAULT 0,
      CONSTRAINT message_threads_id_practice UNIQUE (id, practice_id)
    );
    CREATE INDEX message_threads_patient ON message_threads (practice_id, pseudonym, last_message_at DESC, id DESC);

    CREATE TABLE messages (
      id uuid PRIMARY KEY,
      practice_id uuid NOT NULL REFERENCES practices(id),
      thread_id uuid NOT NULL,
      seq integer NOT NULL CHECK (seq >= 1),
      pseudonym text NOT NULL,
      sender_kind text NOT NULL CHECK (sender_kind IN ('staff', 'patient')),
      sender_id text NOT NULL,
      body bytea NOT NULL,
      created_at timestamptz NOT NULL,
      CONSTRAINT messages_patient_sender CHECK ((sender_kind = 'patient') = (sender_id = 'patient')),
      CONSTRAINT messages_thread_seq UNIQUE (thread_id, seq),
      CONSTRAINT messages_thread_practice FOREIGN KEY (thread_id, practice_id)
        REFERENCES message_threads (id, practice_id)
    );

    -- How far each reader has read a thread: a staff user id, or 'patient' for the thread's patient.
    CREATE TABLE message_reads (
      thread_id uuid NOT NULL,
      practice_id uuid NOT NULL REFERENCES practices(id),
      reader text NOT NULL,
      last_read_seq integer NOT NULL,
      read_at timestamptz NOT NULL,
      PRIMARY KEY (thread_id, reader),
      CONSTRAINT message_reads_thread_practice FOREIGN KEY (thread_id, practice_id)
        REFERENCES message_threads (id, practice_id)
    );

    SELECT custos_isolate('message_threads');
    SELECT custos_isolate('messages');
    SELECT custos_isolate('message_reads');
  `.execute(db);
}
