import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import { ALL, GRANTS } from '../access/grants.ts';
import type { Resource } from '../access/policy.ts';
import { type Binding, open, seal } from '../crypto/envelope.ts';
import { CustosError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import * as chartStore from './chart.store.ts';
import type { CallKeys, Link } from './cipher.ts';
import { Denied, type GateCore, openPatient, type Target } from './gate-core.ts';
import {
  encodeCursor,
  listPage,
  messagePage,
  NewMessage,
  NewThread,
  parse,
  type Sender,
  type Thread,
  type ThreadPage,
  type ThreadRead,
} from './messages.model.ts';
import * as store from './messages.store.ts';

/**
 * Secure messages between staff and a patient (issue 6, item 7): threads per patient, each with
 * a subject and numbered messages. The subject and every message text are sealed with the
 * patient's data key, bound to table, column and row (a message also to its thread and number, so
 * it cannot be moved or reordered unnoticed). Every call is one audit entry naming the patient's
 * pseudonym and the thread.
 *
 * Who: those whose grant reads or writes the `messages` section (src/access/grants.ts): the care
 * team (clinicians and nurses) and, through the portal, the patient in their own threads. A
 * thread is decided through its patient, found from the thread's pseudonym, so a patient actor
 * reaches only threads of their own pseudonym.
 *
 * Rows never hold the patient's id: senders and readers are a user id, `system`, or `patient`.
 */

const MESSAGES: Resource = { kind: 'section', section: 'messages' };

const subjectAt = (threadId: string): Binding => ({
  table: 'message_threads',
  column: 'subject',
  row: threadId,
  version: 0,
});
const textAt = (threadId: string, messageId: string, seq: number): Binding => ({
  table: 'messages',
  column: 'body',
  row: `${threadId}/${messageId}`,
  version: seq,
});

const senderOf = (ctx: AccessContext): Sender =>
  ctx.actor.kind === 'patient'
    ? { kind: 'patient', id: 'patient' }
    : { kind: 'staff', id: ctx.actor.kind === 'system' ? 'system' : ctx.actor.id };

/** The caller's read marker key: a user id, `patient`, or none (the system actor reads nothing "for itself"). */
const readerOf = (ctx: AccessContext): string | null =>
  ctx.actor.kind === 'user' ? ctx.actor.id : ctx.actor.kind === 'patient' ? 'patient' : null;

/** The side whose messages are unread for the caller. */
const otherSide = (ctx: AccessContext): store.Side => (ctx.actor.kind === 'patient' ? 'staff' : 'patient');

/**
 * A thread and its patient, decided: pseudonym -> keyed index -> patient -> policy on the
 * `messages` section. Unknown, malformed and forbidden ids are all `Denied` (one 404).
 */
async function threadAccess(
  g: GateCore,
  tx: chartStore.Tx,
  ctx: AccessContext,
  t: Target,
  threadId: string,
  action: 'read' | 'write',
) {
  if (!isUuid(threadId)) {
    throw new Denied('not-found');
  }
  const thread = await store.loadThread(tx, ctx.practiceId, threadId);
  if (!thread) {
    throw new Denied('not-found');
  }
  t.patientPseudonym = thread.pseudonym;
  const patientId = await chartStore.patientIdForPseudonymIndex(
    tx,
    ctx.practiceId,
    g.keyring.pseudonymIndex(thread.pseudonym),
  );
  if (!patientId) {
    throw new Denied('not-found');
  }
  const p = await g.loadPatient(tx, ctx, t, patientId);
  g.decide(ctx, t, action, MESSAGES, p.facts);
  return { thread, patientId: p.id, link: p.link };
}

function openThread(key: Buffer, row: store.ThreadRow, patientId: string): Thread {
  return {
    id: row.id,
    patientId,
    subject: open(key, subjectAt(row.id), row.subject).toString('utf8'),
    createdBy: row.created_by,
    createdAt: row.created_at,
    closedAt: row.closed_at,
    lastMessageAt: row.last_message_at,
    messageCount: row.message_count,
  };
}

const sealText = (key: Buffer, keyId: string, at: Binding, text: string) =>
  seal(key, keyId, at, Buffer.from(text, 'utf8'));

/** The patient's data key for this call (clinical key id: it never links to the identity rows). */
async function patientKey(g: GateCore, tx: chartStore.Tx, keys: CallKeys, link: Link) {
  const keyId = link.clinicalKeyId;
  return { keyId, key: keys.key(keyId, await g.wrappedKey(tx, keyId)) };
}

/**
 * Starts a thread with a patient: its subject and first message. Staff who write the patient's
 * messages (the care team), or the patient themself (portal).
 */
export async function startThread(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  input: unknown,
): Promise<{ id: string; messageId: string; patientId: string; createdAt: Date }> {
  return g.call(ctx, { action: 'create', resourceType: 'thread' }, async (tx, t, keys) => {
    const v = parse(NewThread, input, 'thread');
    const p = await g.patientFacts(tx, ctx, t, patientId, 'write', MESSAGES);
    const id = randomUUID();
    const messageId = randomUUID();
    const now = g.clock();
    const sender = senderOf(ctx);
    const { keyId, key } = await patientKey(g, tx, keys, p.link);
    await store.insertThread(
      tx,
      {
        id,
        practice_id: ctx.practiceId,
        pseudonym: p.link.pseudonym,
        subject: sealText(key, keyId, subjectAt(id), v.subject),
        created_by: sender.id,
        created_at: now,
        closed_at: null,
        closed_by: null,
        last_message_at: now,
        message_count: 1,
        last_patient_seq: sender.kind === 'patient' ? 1 : 0,
        last_staff_seq: sender.kind === 'staff' ? 1 : 0,
      },
      {
        id: messageId,
        practice_id: ctx.practiceId,
        thread_id: id,
        seq: 1,
        pseudonym: p.link.pseudonym,
        sender_kind: sender.kind,
        sender_id: sender.id,
        body: sealText(key, keyId, textAt(id, messageId, 1), v.text),
        created_at: now,
      },
    );
    const reader = readerOf(ctx);
    if (reader) {
      await store.markRead(tx, { practiceId: ctx.practiceId, threadId: id, reader, seq: 1, now });
    }
    t.resourceId = id;
    t.detail = { ...(t.detail ?? {}), messageId };
    return () => ({ id, messageId, patientId: p.id, createdAt: now });
  });
}

/** Posts a message in an open thread (a closed one answers 409). */
export async function postMessage(
  g: GateCore,
  ctx: AccessContext,
  threadId: string,
  input: unknown,
): Promise<{ id: string; threadId: string; seq: number; patientId: string; createdAt: Date }> {
  const target: Target = { action: 'post', resourceType: 'thread', resourceId: threadId.slice(0, 64) };
  return g.call(ctx, target, async (tx, t, keys) => {
    const v = parse(NewMessage, input, 'message');
    const a = await threadAccess(g, tx, ctx, t, threadId, 'write');
    const now = g.clock();
    const sender = senderOf(ctx);
    const seq = await store.nextSeq(tx, { practiceId: ctx.practiceId, threadId, side: sender.kind, now });
    if (seq === undefined) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'this thread is closed; start a new one');
    }
    const id = randomUUID();
    const { keyId, key } = await patientKey(g, tx, keys, a.link);
    await store.insertMessage(tx, {
      id,
      practice_id: ctx.practiceId,
      thread_id: threadId,
      seq,
      pseudonym: a.thread.pseudonym,
      sender_kind: sender.kind,
      sender_id: sender.id,
      body: sealText(key, keyId, textAt(threadId, id, seq), v.text),
      created_at: now,
    });
    const reader = readerOf(ctx);
    if (reader) {
      // Writing in a thread means having read it up to here.
      await store.markRead(tx, { practiceId: ctx.practiceId, threadId, reader, seq, now });
    }
    t.detail = { ...(t.detail ?? {}), messageId: id, seq };
    return () => ({ id, threadId, seq, patientId: a.patientId, createdAt: now });
  });
}

/** Closes a thread: it stays readable; nobody posts in it any more. Closing twice is 409. */
export async function closeThread(
  g: GateCore,
  ctx: AccessContext,
  threadId: string,
): Promise<{ closedAt: Date }> {
  const target: Target = { action: 'close', resourceType: 'thread', resourceId: threadId.slice(0, 64) };
  return g.call(ctx, target, async (tx, t) => {
    await threadAccess(g, tx, ctx, t, threadId, 'write');
    const now = g.clock();
    const closed = await store.closeThread(tx, {
      practiceId: ctx.practiceId,
      threadId,
      by: senderOf(ctx).id,
      now,
    });
    if (!closed) {
      throw new CustosError('CUSTOS_ERR_CONFLICT', 'this thread is closed already');
    }
    return () => ({ closedAt: now });
  });
}

/**
 * A patient's threads, most recent activity first, `{limit?, before?}` (keyset pagination): the
 * subjects, message counts, last activity and the caller's unread count. One audit entry with the
 * pseudonym and the thread ids shown.
 */
export async function listThreads(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  page: unknown = {},
): Promise<ThreadPage> {
  return g.call(ctx, { action: 'list', resourceType: 'thread' }, async (tx, t, keys) => {
    const q = listPage(page);
    const p = await g.patientFacts(tx, ctx, t, patientId, 'read', MESSAGES);
    const rows = await store.threadsOf(tx, {
      practiceId: ctx.practiceId,
      pseudonym: p.link.pseudonym,
      reader: readerOf(ctx),
      from: otherSide(ctx),
      ...(q.before ? { before: q.before } : {}),
      limit: q.limit + 1,
    });
    const shown = rows.slice(0, q.limit);
    const last = shown.at(-1);
    const next = rows.length > q.limit && last ? encodeCursor(last) : null;
    const wrapped = shown.length > 0 ? await g.wrappedKey(tx, p.link.clinicalKeyId) : undefined;
    t.detail = { ...(t.detail ?? {}), count: shown.length, threadIds: shown.map((r) => r.id) };
    return () => {
      const key = wrapped ? keys.key(p.link.clinicalKeyId, wrapped) : undefined;
      return {
        threads: shown.map((r) => ({ ...openThread(key as Buffer, r, p.id), unread: r.unread })),
        next,
      };
    };
  });
}

/**
 * One thread with its messages, oldest first, `{limit?, after?}` (after a message number). Moves
 * the caller's read marker to the last message returned.
 */
export async function readThread(
  g: GateCore,
  ctx: AccessContext,
  threadId: string,
  page: unknown = {},
): Promise<ThreadRead> {
  const target: Target = { action: 'read', resourceType: 'thread', resourceId: threadId.slice(0, 64) };
  return g.call(ctx, target, async (tx, t, keys) => {
    const q = messagePage(page);
    const a = await threadAccess(g, tx, ctx, t, threadId, 'read');
    const reader = readerOf(ctx);
    const lastReadSeq = reader ? await store.readMark(tx, threadId, reader) : 0;
    const rows = await store.threadMessages(tx, {
      practiceId: ctx.practiceId,
      threadId,
      after: q.after,
      limit: q.limit + 1,
    });
    const shown = rows.slice(0, q.limit);
    const last = shown.at(-1);
    if (reader && last) {
      await store.markRead(tx, {
        practiceId: ctx.practiceId,
        threadId,
        reader,
        seq: last.seq,
        now: g.clock(),
      });
    }
    const keyId = a.link.clinicalKeyId;
    const wrapped = await g.wrappedKey(tx, keyId);
    t.detail = {
      ...(t.detail ?? {}),
      count: shown.length,
      ...(last ? { fromSeq: shown[0]?.seq ?? last.seq, toSeq: last.seq } : {}),
    };
    return () => {
      const key = keys.key(keyId, wrapped);
      return {
        thread: openThread(key, a.thread, a.patientId),
        lastReadSeq,
        messages: shown.map((m) => ({
          id: m.id,
          seq: m.seq,
          sender: { kind: m.sender_kind, id: m.sender_id },
          text: open(key, textAt(threadId, m.id, m.seq), m.body).toString('utf8'),
          createdAt: m.created_at,
        })),
        next: rows.length > q.limit && last ? last.seq : null,
      };
    };
  });
}

/**
 * The staff inbox: threads with messages from the patient that the caller has not read, across
 * the patients the policy lets the caller read messages of (their care team; never through
 * break-the-glass), most recent first, `{limit?, before?}`. One audit entry listing the
 * pseudonyms and thread ids whose subjects it shows.
 */
export async function inbox(g: GateCore, ctx: AccessContext, page: unknown = {}): Promise<ThreadPage> {
  return g.call(ctx, { action: 'list', resourceType: 'inbox' }, async (tx, t, keys) => {
    const q = listPage(page);
    if (ctx.actor.kind !== 'user') {
      throw new Denied('actor-kind');
    }
    g.decide(ctx, t, 'inbox', { kind: 'practice' }, null);
    const subject = g.subject(ctx);
    const practiceWide = subject.roles.some(
      (r) => GRANTS[r].scope === 'practice' && GRANTS[r].read.messages !== undefined,
    );
    const candidates = await store.inboxCandidates(tx, {
      practiceId: ctx.practiceId,
      actorId: ctx.actor.id,
      now: g.clock(),
      practiceWide,
    });
    // Each patient is decided as a read of their messages; only those allowed are even queried.
    const reach = new Map<string, { id: string; link: Link; restricted: boolean }>();
    for (const c of candidates) {
      const d = g.policy(subject, 'read', MESSAGES, { patient: g.factsOf(ctx, c) });
      if (d.allow && d.via !== 'break-glass' && d.view.messages !== undefined) {
        const link = g.link(c.link, c.id);
        reach.set(link.pseudonym, { id: c.id, link, restricted: d.restricted });
      }
    }
    const rows = await store.inboxThreads(tx, {
      practiceId: ctx.practiceId,
      pseudonyms: [...reach.keys()],
      reader: ctx.actor.id,
      ...(q.before ? { before: q.before } : {}),
      limit: q.limit + 1,
    });
    const shown = rows.slice(0, q.limit);
    const last = shown.at(-1);
    const next = rows.length > q.limit && last ? encodeCursor(last) : null;
    const patients = shown.map(
      (r) => reach.get(r.pseudonym) as { id: string; link: Link; restricted: boolean },
    );
    const wrapped = await store.wrappedKeys(
      tx,
      ctx.practiceId,
      patients.map((p) => p.link.clinicalKeyId),
    );
    const pseudonyms = [...new Set(shown.map((r) => r.pseudonym))];
    t.detail = {
      ...(t.detail ?? {}),
      count: shown.length,
      pseudonyms,
      threadIds: shown.map((r) => r.id),
      ...(patients.some((p) => p.restricted) ? { restrictedPatient: true } : {}),
    };
    return () => ({
      threads: shown.map((r, i) => {
        const p = patients[i] as { id: string; link: Link };
        const keyId = p.link.clinicalKeyId;
        const w = wrapped.get(keyId);
        if (!w) {
          throw new CustosError('CUSTOS_ERR_INTEGRITY', `data key ${keyId} is missing`);
        }
        return { ...openThread(keys.key(keyId, w), r, p.id), unread: r.unread };
      }),
      next,
    });
  });
}

/**
 * The patient's e-mail address for a "you have a new message" notice, or null (none on file, or
 * the patient opted out of the portal, where the message would be read). Decrypts the identity
 * but returns only the address; audited as a read of the patient's contact section.
 */
export async function noticeAddress(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
): Promise<string | null> {
  const target: Target = {
    action: 'read',
    resourceType: 'patient',
    detail: { fields: ['email'], use: 'message-notice' },
  };
  return g.call(ctx, target, async (tx, t, keys) => {
    const p = await g.patientFacts(tx, ctx, t, patientId, 'read', { kind: 'section', section: 'contact' });
    const fields = p.decision.view.contact;
    if (fields === undefined || (fields !== ALL && !fields.includes('email'))) {
      throw new Denied('no-grant');
    }
    if (p.facts.consent?.portalOptOut) {
      t.detail = { ...(t.detail ?? {}), skipped: 'portal-opt-out' };
      return () => null;
    }
    const [head] = await chartStore.loadPatientHeads(tx, {
      practiceId: ctx.practiceId,
      patientIds: [p.id],
      actorId: ctx.actor.id,
      now: g.clock(),
    });
    if (!head) {
      throw new Denied('not-found');
    }
    return () => openPatient(keys, head).identity.email ?? null;
  });
}
