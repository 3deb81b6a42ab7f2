import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AccessContext, accessContext } from '../../src/access/context.ts';
import { createMailer } from '../../src/notify/mailer.ts';
import { MessageNotices } from '../../src/notify/message-notices.ts';
import { readOutbox } from '../../src/notify/outbox.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] messages-api.int.test.ts skipped: ${skip}`);
}

/** Markers of message content: never in an e-mail, an audit entry, a denial or a raw row. */
const SUBJECT = 'Synthetic subject about the knee scan';
const TEXT = 'Synthetic message: your results show a meniscus tear.';
const REPLY = 'Synthetic reply from the patient about pain at night.';
const FOLLOW_UP = 'Synthetic follow-up: please book a physiotherapy session.';
const EMAIL = 'messaging.patient@example.org';
const MARKERS = [SUBJECT, TEXT, REPLY, FOLLOW_UP, 'meniscus', 'physiotherapy', 'knee scan'];

interface ThreadJson {
  id: string;
  patientId: string;
  subject: string;
  createdBy: string;
  messageCount: number;
  closedAt: string | null;
  unread: number;
}
interface MessageJson {
  id: string;
  seq: number;
  sender: { kind: string; id: string };
  text: string;
}

/**
 * Secure messages over real HTTPS on both engines: threads, messages, pages, the inbox, the
 * notice e-mail (no content), who may read what, audited denials, ciphertext at rest.
 */
describe.skipIf(skip)('secure messages API over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  /** On the care team of doc (and nurse): `main` has an e-mail address, `quiet` none. */
  let main = '';
  let quiet = '';
  /** A patient of another clinician only. */
  let elsewhere = '';
  let thread = '';

  beforeAll(async () => {
    server = await startServer();
    const roles: Record<string, string[]> = {
      doc: ['clinician'],
      nurse: ['nurse'],
      other: ['clinician'],
      desk: ['frontdesk'],
      bill: ['billing'],
      officer: ['privacy_officer'],
      admin: ['admin'],
    };
    for (const [name, r] of Object.entries(roles)) {
      staff[name] = await enrollStaff(server, new Client(server), name, r);
    }
    for (const name of Object.keys(roles)) {
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    const register = async (who: string, id: unknown, careTeam: string[]) => {
      const r = await as[who]!.post('/api/v1/patients', { identity: id, careTeam });
      expect(r.status).toBe(201);
      return (r.body as { id: string }).id;
    };
    main = await register('doc', identity({ email: EMAIL }), [staff.nurse!.id]);
    quiet = await register('doc', identity({ email: undefined }), [staff.nurse!.id]);
    elsewhere = await register('other', identity(), []);
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  /** The patient through the gate, as the portal will call it (no portal route exists yet). */
  const patient = (patientId: string): AccessContext =>
    accessContext({
      actor: { kind: 'patient', id: patientId },
      role: 'patient',
      practiceId: server.custos.practiceId,
      purpose: 'patient-request',
      requestId: randomUUID(),
    });
  const db = () => server.custos.database.owner;
  const lastSeq = async () =>
    String(
      (
        await db()
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? '0',
    );
  const entriesSince = (since: string) =>
    db().selectFrom('audit_entries').selectAll().where('seq', '>', since).orderBy('seq').execute();
  const tick = () => server.clock.advance(1_000);

  it('starts a thread, posts in it, lists and reads it with senders, pages and unread counts', async () => {
    const before = await lastSeq();
    const started = await as.doc!.post(`/api/v1/patients/${main}/threads`, { subject: SUBJECT, text: TEXT });
    expect(started.status).toBe(201);
    const body = started.body as { id: string; messageId: string; createdAt: string };
    thread = body.id;
    expect(body.createdAt).toBe(server.clock.now().toISOString());
    const [entry] = (await entriesSince(before)).filter((e) => e.actor_id === staff.doc!.id);
    expect(entry).toMatchObject({
      action: 'create',
      resource_type: 'thread',
      resource_id: thread,
      outcome: 'success',
      detail: { messageId: body.messageId },
    });
    const pseudonym = entry!.patient_pseudonym;
    expect(pseudonym).toMatch(/^ps_/);

    // The patient replies (portal side, through the gate), then the clinician follows up.
    tick();
    const reply = await server.custos.chart.postMessage(patient(main), thread, { text: REPLY });
    expect(reply.seq).toBe(2);
    tick();
    const follow = await as.doc!.post(`/api/v1/threads/${thread}/messages`, { text: FOLLOW_UP });
    expect(follow).toMatchObject({ status: 201, body: { seq: 3 } });

    // The nurse on the team has read nothing: one unread message from the patient.
    const listed = await as.nurse!.get(`/api/v1/patients/${main}/threads`);
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({
      threads: [
        {
          id: thread,
          patientId: main,
          subject: SUBJECT,
          createdBy: staff.doc!.id,
          messageCount: 3,
          closedAt: null,
          unread: 1,
        },
      ],
      next: null,
    });
    // The author read up to their own last post.
    const mine = (await as.doc!.get(`/api/v1/patients/${main}/threads`)).body as { threads: ThreadJson[] };
    expect(mine.threads[0]?.unread).toBe(0);

    // Read in pages, oldest first; each read is one audit entry with pseudonym and thread id.
    const readBefore = await lastSeq();
    const page1 = await as.nurse!.get(`/api/v1/threads/${thread}?limit=2`);
    expect(page1.status).toBe(200);
    const p1 = page1.body as {
      thread: ThreadJson;
      lastReadSeq: number;
      messages: MessageJson[];
      next: number;
    };
    expect(p1.thread).toMatchObject({ id: thread, subject: SUBJECT, patientId: main, messageCount: 3 });
    expect(p1.lastReadSeq).toBe(0);
    expect(p1.messages.map((m) => [m.seq, m.sender, m.text])).toEqual([
      [1, { kind: 'staff', id: staff.doc!.id }, TEXT],
      [2, { kind: 'patient', id: 'patient' }, REPLY],
    ]);
    expect(p1.next).toBe(2);
    const page2 = (await as.nurse!.get(`/api/v1/threads/${thread}?after=2`)).body as typeof p1;
    expect(page2.lastReadSeq).toBe(2);
    expect(page2.messages.map((m) => [m.seq, m.text])).toEqual([[3, FOLLOW_UP]]);
    expect(page2.next).toBeNull();
    const reads = (await entriesSince(readBefore)).filter((e) => e.actor_id === staff.nurse!.id);
    expect(
      reads.map((e) => [e.action, e.resource_type, e.resource_id, e.patient_pseudonym, e.outcome]),
    ).toEqual([
      ['read', 'thread', thread, pseudonym, 'success'],
      ['read', 'thread', thread, pseudonym, 'success'],
    ]);
    expect(reads.map((e) => e.detail)).toEqual([
      { count: 2, fromSeq: 1, toSeq: 2 },
      { count: 1, fromSeq: 3, toSeq: 3 },
    ]);
    const afterRead = (await as.nurse!.get(`/api/v1/patients/${main}/threads`)).body as {
      threads: ThreadJson[];
    };
    expect(afterRead.threads[0]?.unread).toBe(0);
  });

  it('pages a patient’s threads by last activity, newest first', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      tick();
      const r = await as.doc!.post(`/api/v1/patients/${quiet}/threads`, {
        subject: `Synthetic paging subject ${n}`,
        text: `Synthetic paging text ${n}`,
      });
      expect(r.status).toBe(201);
      ids.push((r.body as { id: string }).id);
    }
    const first = (await as.doc!.get(`/api/v1/patients/${quiet}/threads?limit=2`)).body as {
      threads: ThreadJson[];
      next: string;
    };
    expect(first.threads.map((t) => t.id)).toEqual([ids[2], ids[1]]);
    expect(first.next).toEqual(expect.any(String));
    const second = (await as.doc!.get(`/api/v1/patients/${quiet}/threads?limit=2&before=${first.next}`))
      .body as { threads: ThreadJson[]; next: string | null };
    expect(second).toEqual({ threads: [expect.objectContaining({ id: ids[0] })], next: null });
  });

  it('shows in the inbox the threads where care-team patients wrote since the caller read, and no others', async () => {
    // Patients write: in main's thread, in a new thread of quiet, and to another clinician.
    tick();
    await server.custos.chart.postMessage(patient(main), thread, { text: 'Synthetic second reply.' });
    tick();
    const quietThread = await server.custos.chart.startThread(patient(quiet), quiet, {
      subject: 'Synthetic question from the patient',
      text: 'Synthetic question text.',
    });
    tick();
    const away = await server.custos.chart.startThread(patient(elsewhere), elsewhere, {
      subject: 'Synthetic subject for another clinician',
      text: 'Synthetic text for another clinician.',
    });

    const before = await lastSeq();
    const inbox = await as.doc!.get('/api/v1/inbox');
    expect(inbox.status).toBe(200);
    const items = (inbox.body as { threads: ThreadJson[]; next: string | null }).threads;
    expect(items.map((t) => [t.id, t.patientId, t.unread])).toEqual([
      [quietThread.id, quiet, 1],
      [thread, main, 1],
    ]);
    expect(items[0]?.subject).toBe('Synthetic question from the patient');
    expect(items[0]?.createdBy).toBe('patient');
    // One entry for the whole inbox, naming the pseudonyms and threads it showed.
    const entries = (await entriesSince(before)).filter((e) => e.actor_id === staff.doc!.id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ action: 'list', resource_type: 'inbox', outcome: 'success' });
    const detail = entries[0]!.detail as { count: number; pseudonyms: string[]; threadIds: string[] };
    expect(detail.count).toBe(2);
    expect(detail.pseudonyms).toHaveLength(2);
    expect(detail.threadIds).toEqual([quietThread.id, thread]);
    expect(JSON.stringify(entries[0])).not.toContain('Synthetic');

    // Pages; then reading a thread takes it out of the caller's inbox, not out of the nurse's.
    const page = (await as.doc!.get('/api/v1/inbox?limit=1')).body as { threads: ThreadJson[]; next: string };
    expect(page.threads.map((t) => t.id)).toEqual([quietThread.id]);
    const rest = (await as.doc!.get(`/api/v1/inbox?limit=1&before=${page.next}`)).body as {
      threads: ThreadJson[];
      next: string | null;
    };
    expect(rest).toMatchObject({ threads: [{ id: thread }], next: null });
    expect((await as.doc!.get(`/api/v1/threads/${thread}`)).status).toBe(200);
    const after = (await as.doc!.get('/api/v1/inbox')).body as { threads: ThreadJson[] };
    expect(after.threads.map((t) => t.id)).toEqual([quietThread.id]);
    const nurse = (await as.nurse!.get('/api/v1/inbox')).body as { threads: ThreadJson[] };
    expect(nurse.threads.map((t) => t.id)).toEqual([quietThread.id, thread]);
    // The other clinician sees their own patient's thread only.
    const other = (await as.other!.get('/api/v1/inbox')).body as { threads: ThreadJson[] };
    expect(other.threads.map((t) => t.id)).toEqual([away.id]);

    // Roles without messages have no inbox: the 404 of a missing route, audited as a denial.
    for (const who of ['desk', 'bill', 'officer', 'admin']) {
      const mark = await lastSeq();
      expectError(await as[who]!.get('/api/v1/inbox'), 404, 'CUSTOS_ERR_NOT_FOUND');
      const denied = (await entriesSince(mark)).filter((e) => e.actor_id === staff[who]!.id);
      expect(
        denied.map((e) => [e.action, e.resource_type, e.outcome]),
        who,
      ).toEqual([['list', 'inbox', 'denied']]);
    }
  });

  it('lets a patient reach only their own threads', async () => {
    await expect(server.custos.chart.readThread(patient(quiet), thread)).rejects.toMatchObject({
      code: 'CUSTOS_ERR_NOT_FOUND',
    });
    await expect(
      server.custos.chart.postMessage(patient(elsewhere), thread, { text: 'Synthetic intrusion.' }),
    ).rejects.toMatchObject({ code: 'CUSTOS_ERR_NOT_FOUND' });
    const own = await server.custos.chart.readThread(patient(main), thread);
    expect(own.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    // Writing in a thread counts as having read it up to there.
    expect(own.lastReadSeq).toBe(4);
  });

  it('refuses invalid input with a 400 naming the field, never echoing the value', async () => {
    const long = (n: number) => `Synthetic${'x'.repeat(n)}`;
    const cases: [string, string, unknown, string][] = [
      [
        'POST',
        `/api/v1/patients/${main}/threads`,
        { subject: '  ', text: 'Synthetic text.' },
        'body.subject',
      ],
      [
        'POST',
        `/api/v1/patients/${main}/threads`,
        { subject: long(200), text: 'Synthetic text.' },
        'body.subject',
      ],
      [
        'POST',
        `/api/v1/patients/${main}/threads`,
        { subject: 'Two\nlines', text: 'Synthetic text.' },
        'body.subject',
      ],
      ['POST', `/api/v1/patients/${main}/threads`, { subject: 'Synthetic subject' }, 'body.text'],
      [
        'POST',
        `/api/v1/patients/${main}/threads`,
        { subject: 'Synthetic subject', text: long(10_000) },
        'body.text',
      ],
      ['POST', `/api/v1/patients/${main}/threads`, { subject: 'Synthetic subject', text: 7 }, 'body.text'],
      ['POST', `/api/v1/threads/${thread}/messages`, { text: '' }, 'body.text'],
      ['POST', `/api/v1/threads/${thread}/messages`, { text: 'Synthetic\u0007bell' }, 'body.text'],
      ['POST', `/api/v1/threads/${thread}/messages`, { text: 'Synthetic.', extra: 1 }, 'body'],
      ['GET', `/api/v1/patients/${main}/threads?limit=0`, undefined, 'query.limit'],
      ['GET', `/api/v1/patients/${main}/threads?limit=abc`, undefined, 'query.limit'],
      ['GET', `/api/v1/patients/${main}/threads?before=not-a-cursor`, undefined, 'query.before'],
      ['GET', `/api/v1/threads/${thread}?after=-1`, undefined, 'query.after'],
      ['GET', `/api/v1/threads/${thread}?limit=201`, undefined, 'query.limit'],
      ['GET', '/api/v1/inbox?sort=desc', undefined, 'query'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await as.doc!.request(method, path, body);
      expectError(r, 400, 'CUSTOS_ERR_VALIDATION', field);
      expect(r.text, `${method} ${path}`).not.toContain('xxxxxxxx');
      expect(r.text, `${method} ${path}`).not.toContain('Synthetic');
    }
    // Nothing was stored by any of them.
    const n = await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages`.execute(db());
    const stored = (await as.doc!.get(`/api/v1/threads/${thread}`)).body as {
      thread: { messageCount: number };
    };
    expect(stored.thread.messageCount).toBe(4);
    // main's thread 4, quiet's 3 + 1 threads of one message each, elsewhere's 1.
    expect(n.rows[0]?.n).toBe(4 + 4 + 1);
  });

  it('answers every id route with the 404 of a missing id to those who may not, each audited as denied', async () => {
    const routes: [string, string, unknown][] = [
      [
        'POST',
        `/api/v1/patients/${main}/threads`,
        { subject: 'Synthetic attempt', text: 'Synthetic attempt.' },
      ],
      ['GET', `/api/v1/patients/${main}/threads`, undefined],
      ['GET', `/api/v1/threads/${thread}`, undefined],
      ['POST', `/api/v1/threads/${thread}/messages`, { text: 'Synthetic attempt.' }],
      ['POST', `/api/v1/threads/${thread}/close`, {}],
    ];
    // A clinician off the care team, and the roles that reach the patient but not the messages.
    for (const who of ['other', 'desk', 'bill', 'officer', 'admin']) {
      for (const [method, path, body] of routes) {
        const where = `${method} ${path} as ${who}`;
        const mark = await lastSeq();
        const real = await as[who]!.request(method, path, body);
        const mid = await lastSeq();
        const unknown = await as[who]!.request(method, path.replace(/[0-9a-f-]{36}/, randomUUID()), body);
        expect(real.status, where).toBe(404);
        expect(real.text, where).toBe(unknown.text);
        for (const m of MARKERS) {
          expect(real.text, where).not.toContain(m);
        }
        const entries = (await entriesSince(mark)).filter((e) => e.actor_id === staff[who]!.id);
        expect(
          entries.map((e) => [BigInt(e.seq) <= BigInt(mid), e.outcome]),
          where,
        ).toEqual([
          [true, 'denied'],
          [false, 'denied'],
        ]);
        const denial = entries[0]!;
        expect(denial.resource_type, where).toBe('thread');
        if (path.includes('/threads/')) {
          expect([denial.resource_id, denial.patient_pseudonym], where).toEqual([
            thread,
            expect.stringMatching(/^ps_/),
          ]);
        }
      }
    }
    const still = (await as.doc!.get(`/api/v1/threads/${thread}`)).body as { thread: ThreadJson };
    expect(still.thread).toMatchObject({ messageCount: 4, closedAt: null });
  });

  it('closes a thread: still readable, no more posts, closing twice is a conflict', async () => {
    const r = await as.nurse!.post(`/api/v1/patients/${main}/threads`, {
      subject: 'Synthetic subject to close',
      text: 'Synthetic text to close.',
    });
    const id = (r.body as { id: string }).id;
    tick();
    const closed = await as.doc!.post(`/api/v1/threads/${id}/close`);
    expect(closed).toMatchObject({ status: 200, body: { closedAt: server.clock.now().toISOString() } });
    expectError(
      await as.doc!.post(`/api/v1/threads/${id}/messages`, { text: 'Synthetic late.' }),
      409,
      'CUSTOS_ERR_CONFLICT',
    );
    expectError(await as.doc!.post(`/api/v1/threads/${id}/close`), 409, 'CUSTOS_ERR_CONFLICT');
    await expect(
      server.custos.chart.postMessage(patient(main), id, { text: 'Synthetic late reply.' }),
    ).rejects.toMatchObject({ code: 'CUSTOS_ERR_CONFLICT' });
    const read = (await as.doc!.get(`/api/v1/threads/${id}`)).body as {
      thread: ThreadJson;
      messages: MessageJson[];
    };
    expect(read.thread.closedAt).toBe(server.clock.now().toISOString());
    expect(read.messages).toHaveLength(1);
  });

  it('tells the patient by e-mail that there is a message, with no subject, text or sender in it', async () => {
    await server.services.notices.drain();
    const mails = await readOutbox(server.outboxDir!);
    // Staff posts to `main`: the thread, the follow-up, the thread to close. None for `quiet`
    // (no address) and none for what patients wrote.
    expect(mails.map((m) => m.to)).toEqual([EMAIL, EMAIL, EMAIL]);
    for (const m of mails) {
      expect(m.subject).toBe('You have a new message from Default practice');
      expect(m.text).toContain('https://portal.example.org/');
      const decoded = [
        m.raw,
        m.subject,
        m.text,
        m.html,
        ...m.attachments.map((a) => a.content.toString()),
      ].join('\n');
      for (const marker of [...MARKERS, 'Synthetic', staff.doc!.id, staff.nurse!.id, main, thread]) {
        expect(decoded, marker).not.toContain(marker);
      }
    }
    // Each address was read through the gate by the system actor for the staff member, audited.
    const reads = await db()
      .selectFrom('audit_entries')
      .selectAll()
      .where('actor_kind', '=', 'system')
      .where('resource_type', '=', 'patient')
      .where('action', '=', 'read')
      .orderBy('seq')
      .execute();
    const notices = reads.filter((e) => (e.detail as { use?: string } | null)?.use === 'message-notice');
    expect(notices.map((e) => [e.outcome, e.purpose])).toEqual(
      Array.from({ length: 3 + 3 }, () => ['success', 'operations']),
    );
    expect(new Set(notices.map((e) => e.on_behalf_of))).toEqual(new Set([staff.doc!.id, staff.nurse!.id]));
  });

  it('keeps the message when the mail relay fails, and logs the failure without address or content', async () => {
    const lines: string[] = [];
    const failing = new MessageNotices({
      chart: server.custos.chart,
      db: server.custos.database.db,
      // A real relay client pointed at a closed loopback port: every send fails to connect.
      mailer: createMailer({
        dataDir: server.outboxDir!,
        smtpUrl: 'smtp://127.0.0.1:1',
        smtpCaFile: undefined,
        mailFrom: 'Custos <no-reply@example.org>',
      }),
      portalUrl: 'https://portal.example.org/',
      log: (line) => lines.push(line),
    });
    const ctx = accessContext({
      actor: { kind: 'user', id: staff.doc!.id },
      role: 'clinician',
      practiceId: server.custos.practiceId,
      purpose: 'treatment',
      requestId: randomUUID(),
    });
    const posted = await server.custos.chart.postMessage(ctx, thread, {
      text: 'Synthetic text, relay down.',
    });
    failing.afterPost(ctx, { patientId: posted.patientId, threadId: posted.threadId });
    await failing.drain();
    expect(lines).toEqual([
      `message notice for thread ${thread} not sent (delivery unreachable, transient; request ${ctx.requestId})`,
    ]);
    const read = await server.custos.chart.readThread(ctx, thread, { after: posted.seq - 1 });
    expect(read.messages.map((m) => m.text)).toEqual(['Synthetic text, relay down.']);
  });

  it('stores subjects and texts only as ciphertext, and audits no content', async () => {
    const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
    for (const table of ['message_threads', 'messages', 'message_reads', 'audit_entries']) {
      const rows = await sql<{
        r: string;
      }>`SELECT row_to_json(t)::text AS r FROM ${sql.table(table)} t`.execute(db());
      expect(rows.rows.length, table).toBeGreaterThan(0);
      const dump = rows.rows.map((x) => x.r).join('\n');
      for (const m of [...MARKERS, 'Synthetic']) {
        expect(dump.includes(m) || dump.includes(hex(m)), `${table}: ${m}`).toBe(false);
      }
      if (table !== 'audit_entries') {
        expect(dump.includes(main) || dump.includes(quiet), `${table} names a patient id`).toBe(false);
      }
    }
  });
});
