import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NewMessage, NewThread, PAGE_MAX } from '../chart/messages.model.ts';
import { defineRoute, inBody, named, parseInput, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Secure messages, staff side (issue 6, item 7): threads per patient, messages, the inbox. Every
 * call goes through the gate, which decides per patient (the care team reads and writes messages;
 * front desk, billing, the administrator and the privacy officer do not), audits it and answers a
 * denial with the 404 of a missing id. Subjects and texts travel in bodies, never in URLs; the only
 * query parameters are page sizes and opaque cursors.
 *
 * After a staff member's message has committed, the patient gets a "you have a new message"
 * e-mail with no content (src/notify/message-notices.ts); a mail failure never undoes the message.
 */
const TAGS = ['messages'] as const;
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const PatientParams = z.object({ id: anId('patient') });
const ThreadParams = z.object({ id: anId('thread') });

const limit = (max: number) =>
  z.coerce
    .number('must be a number')
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`)
    .optional();
const ListQuery = z
  .object({
    limit: limit(PAGE_MAX),
    before: z.string().max(100, 'must be the `next` value of a previous page').optional(),
  })
  .strict();
const ThreadQuery = z
  .object({
    limit: limit(200),
    after: z.coerce
      .number('must be a number')
      .int('must be an integer')
      .min(0, 'must be 0 or more')
      .optional(),
  })
  .strict();

/** The gate names its page input `limit`, `before`, `after`; the client sent them in the query. */
const inQuery = (f: string) => `query.${f}`;

const SEES = 'Care team (clinician, nurse) only; others get the 404 of a missing id, audited.';

export function registerMessageRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/threads',
      summary: `Start a secure-message thread with the patient {subject, text}; the patient gets a content-free "new message" e-mail. ${SEES} 201 {id, messageId, createdAt}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: NewThread,
      handler: async (req, reply) => {
        const r = await named(chart.startThread(req.ctx, req.params.id, req.body), inBody);
        s.notices.afterPost(req.ctx, { patientId: r.patientId, threadId: r.id });
        return reply
          .code(201)
          .send({ id: r.id, messageId: r.messageId, createdAt: r.createdAt.toISOString() });
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/threads',
      summary: `The patient's threads, most recent activity first (?limit=1-${PAGE_MAX}, default 20; ?before=<next>): subject, message count, last activity, closed, and the caller's unread count {threads, next}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => {
        const q = parseInput(ListQuery, req.raw.query ?? {}, 'query');
        return named(chart.listThreads(req.ctx, req.params.id, q), inQuery);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/threads/:id',
      summary: `One thread and its messages, oldest first (?limit=1-200, default 50; ?after=<message number>); marks them read for the caller {thread, lastReadSeq, messages, next}. ${SEES}`,
      tags: TAGS,
      auth: 'session',
      params: ThreadParams,
      handler: async (req) => {
        const q = parseInput(ThreadQuery, req.raw.query ?? {}, 'query');
        return named(chart.readThread(req.ctx, req.params.id, q), inQuery);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/threads/:id/messages',
      summary: `Post a message {text} in an open thread (closed: 409); the patient gets a content-free "new message" e-mail. ${SEES} 201 {id, seq, createdAt}`,
      tags: TAGS,
      auth: 'session',
      params: ThreadParams,
      body: NewMessage,
      handler: async (req, reply) => {
        const r = await named(chart.postMessage(req.ctx, req.params.id, req.body), inBody);
        s.notices.afterPost(req.ctx, { patientId: r.patientId, threadId: r.threadId });
        return reply.code(201).send({ id: r.id, seq: r.seq, createdAt: r.createdAt.toISOString() });
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/threads/:id/close',
      summary: `Close a thread: it stays readable, nobody posts in it any more (closed already: 409). ${SEES} {closedAt}`,
      tags: TAGS,
      auth: 'session',
      params: ThreadParams,
      handler: async (req) => {
        const r = await chart.closeThread(req.ctx, req.params.id);
        return { closedAt: r.closedAt.toISOString() };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/inbox',
      summary: `The caller's inbox: threads in which a patient of their care team wrote since the caller last read, most recent first (?limit=1-${PAGE_MAX}, default 20; ?before=<next>), with patientId and unread count {threads, next}. One audit entry with the pseudonyms shown. Clinicians and nurses; others get 404.`,
      tags: TAGS,
      auth: 'session',
      handler: async (req) => {
        const q = parseInput(ListQuery, req.raw.query ?? {}, 'query');
        return named(chart.messageInbox(req.ctx, q), inQuery);
      },
    },
    resolve,
  );
}
