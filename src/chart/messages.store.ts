import { type Insertable, sql } from 'kysely';
import { onTeamSql, type PatientFactsRow, type Tx } from './chart.store.ts';
import type { Position } from './messages.model.ts';
import type { ChartTables } from './tables.ts';

/**
 * SQL for secure messages (src/chart/messages.service.ts decides, seals and opens). Rows in,
 * rows out: no decisions, no decryption.
 */

export type ThreadRow = ChartTables['message_threads'];
export type MessageRow = ChartTables['messages'];
export type Side = 'staff' | 'patient';

/** A thread of a list, with the caller's unread count (messages from the other side after their marker). */
export type ListedThread = ThreadRow & { readonly unread: number };

export async function loadThread(
  tx: Tx,
  practiceId: string,
  threadId: string,
): Promise<ThreadRow | undefined> {
  return tx
    .selectFrom('message_threads')
    .selectAll()
    .where('practice_id', '=', practiceId)
    .where('id', '=', threadId)
    .executeTakeFirst();
}

export async function insertThread(
  tx: Tx,
  thread: Insertable<ChartTables['message_threads']>,
  first: Insertable<ChartTables['messages']>,
): Promise<void> {
  await tx.insertInto('message_threads').values(thread).execute();
  await tx.insertInto('messages').values(first).execute();
}

/**
 * Hands out the next seq of an open thread and records the activity; undefined when the thread
 * is closed. The row lock serializes concurrent posts to one thread.
 */
export async function nextSeq(
  tx: Tx,
  q: { practiceId: string; threadId: string; side: Side; now: Date },
): Promise<number | undefined> {
  const row = await tx
    .updateTable('message_threads')
    .set((eb) => ({
      message_count: eb('message_count', '+', 1),
      last_message_at: q.now,
      ...(q.side === 'patient'
        ? { last_patient_seq: eb('message_count', '+', 1) }
        : { last_staff_seq: eb('message_count', '+', 1) }),
    }))
    .where('practice_id', '=', q.practiceId)
    .where('id', '=', q.threadId)
    .where('closed_at', 'is', null)
    .returning('message_count')
    .executeTakeFirst();
  return row?.message_count;
}

export async function insertMessage(tx: Tx, message: Insertable<ChartTables['messages']>): Promise<void> {
  await tx.insertInto('messages').values(message).execute();
}

/** Closes an open thread; false when it was closed already. */
export async function closeThread(
  tx: Tx,
  q: { practiceId: string; threadId: string; by: string; now: Date },
): Promise<boolean> {
  const r = await tx
    .updateTable('message_threads')
    .set({ closed_at: q.now, closed_by: q.by })
    .where('practice_id', '=', q.practiceId)
    .where('id', '=', q.threadId)
    .where('closed_at', 'is', null)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** The reader's marker in a thread (0: read nothing yet). */
export async function readMark(tx: Tx, threadId: string, reader: string): Promise<number> {
  const row = await tx
    .selectFrom('message_reads')
    .select('last_read_seq')
    .where('thread_id', '=', threadId)
    .where('reader', '=', reader)
    .executeTakeFirst();
  return row?.last_read_seq ?? 0;
}

/** Moves the reader's marker forward to `seq` (never back). */
export async function markRead(
  tx: Tx,
  q: { practiceId: string; threadId: string; reader: string; seq: number; now: Date },
): Promise<void> {
  await tx
    .insertInto('message_reads')
    .values({
      thread_id: q.threadId,
      practice_id: q.practiceId,
      reader: q.reader,
      last_read_seq: q.seq,
      read_at: q.now,
    })
    .onConflict((oc) =>
      oc.columns(['thread_id', 'reader']).doUpdateSet({
        last_read_seq: sql<number>`GREATEST(message_reads.last_read_seq, excluded.last_read_seq)`,
        read_at: (eb) => eb.ref('excluded.read_at'),
      }),
    )
    .execute();
}

/** Messages of a thread after `after`, oldest first. */
export async function threadMessages(
  tx: Tx,
  q: { practiceId: string; threadId: string; after: number; limit: number },
): Promise<MessageRow[]> {
  return tx
    .selectFrom('messages')
    .selectAll()
    .where('practice_id', '=', q.practiceId)
    .where('thread_id', '=', q.threadId)
    .where('seq', '>', q.after)
    .orderBy('seq')
    .limit(q.limit)
    .execute();
}

/** Unread count: messages of `from` after the reader's marker (the reader's own side never counts). */
const unreadSql = (reader: string | null, from: Side) =>
  sql<number>`(SELECT count(*)::int FROM messages m WHERE m.thread_id = t.id AND m.sender_kind = ${from}
     AND m.seq > COALESCE((SELECT r.last_read_seq FROM message_reads r WHERE r.thread_id = t.id AND r.reader = ${reader ?? ''}), 0))`;

/** A patient's threads (by pseudonym), most recent activity first, before `before`. */
export async function threadsOf(
  tx: Tx,
  q: {
    practiceId: string;
    pseudonym: string;
    reader: string | null;
    from: Side;
    before?: Position;
    limit: number;
  },
): Promise<ListedThread[]> {
  let query = tx
    .selectFrom('message_threads as t')
    .selectAll('t')
    .select(unreadSql(q.reader, q.from).as('unread'))
    .where('t.practice_id', '=', q.practiceId)
    .where('t.pseudonym', '=', q.pseudonym);
  if (q.before) {
    query = query.where(sql<boolean>`(t.last_message_at, t.id) < (${q.before.at}, ${q.before.id}::uuid)`);
  }
  return query.orderBy('t.last_message_at', 'desc').orderBy('t.id', 'desc').limit(q.limit).execute();
}

/**
 * The staff inbox: threads of the given pseudonyms in which the patient wrote after the reader's
 * marker (closed threads too: nothing the patient wrote is lost), most recent activity first.
 * The thread row's `last_patient_seq` makes the filter a comparison, not a scan of messages.
 */
export async function inboxThreads(
  tx: Tx,
  q: { practiceId: string; pseudonyms: readonly string[]; reader: string; before?: Position; limit: number },
): Promise<ListedThread[]> {
  if (q.pseudonyms.length === 0) {
    return [];
  }
  let query = tx
    .selectFrom('message_threads as t')
    .leftJoin('message_reads as r', (j) => j.onRef('r.thread_id', '=', 't.id').on('r.reader', '=', q.reader))
    .selectAll('t')
    .select(unreadSql(q.reader, 'patient').as('unread'))
    .where('t.practice_id', '=', q.practiceId)
    .where(sql<boolean>`t.pseudonym = ANY(${[...q.pseudonyms]}::text[])`)
    .where(sql<boolean>`t.last_patient_seq > COALESCE(r.last_read_seq, 0)`);
  if (q.before) {
    query = query.where(sql<boolean>`(t.last_message_at, t.id) < (${q.before.at}, ${q.before.id}::uuid)`);
  }
  return query.orderBy('t.last_message_at', 'desc').orderBy('t.id', 'desc').limit(q.limit).execute();
}

/**
 * Policy facts of the patients whose messages may reach the caller's inbox: their current
 * care-team patients, or every patient of the practice for a practice-wide role. Never through
 * break-the-glass (`grant_id` is null): emergency access is for opening one chart on purpose,
 * not for filling a routine work list.
 */
export async function inboxCandidates(
  tx: Tx,
  q: { practiceId: string; actorId: string; now: Date; practiceWide: boolean },
): Promise<PatientFactsRow[]> {
  let query = tx
    .selectFrom('patients as p')
    .innerJoin('patient_links as l', 'l.patient_id', 'p.id')
    .leftJoin('patient_consents as c', 'c.patient_id', 'p.id')
    .select([
      'p.id',
      'l.link',
      'p.restricted',
      onTeamSql('p.id', q.actorId, q.now).as('on_team'),
      sql<string | null>`NULL::text`.as('grant_id'),
      'c.body as consent',
      'c.version as consent_version',
      sql<boolean>`false`.as('namesake'),
    ])
    .where('p.practice_id', '=', q.practiceId);
  if (!q.practiceWide) {
    query = query.where(onTeamSql('p.id', q.actorId, q.now));
  }
  return query.execute();
}

/** Wrapped data keys by id (the clinical key ids of the patients whose threads are shown). */
export async function wrappedKeys(tx: Tx, practiceId: string, keyIds: readonly string[]) {
  if (keyIds.length === 0) {
    return new Map<string, Buffer>();
  }
  const rows = await tx
    .selectFrom('data_keys')
    .select(['id', 'wrapped'])
    .where('practice_id', '=', practiceId)
    .where('id', 'in', [...new Set(keyIds)])
    .execute();
  return new Map(rows.map((r) => [r.id, r.wrapped]));
}
