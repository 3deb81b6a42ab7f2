import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { defineRoute, inBody, named, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * The notes lifecycle and amendment requests over HTTPS (issue 6, item 3): sign a draft (its
 * author, after POST /api/v1/auth/reauth within 5 minutes), amend a signed note, record a
 * patient's amendment request and decide it. Every call goes through the gate; a denial is the
 * same 404 as a missing id.
 */
const TAGS = ['notes'] as const;
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const RecordParams = z.object({ id: anId('record') });
const RequestParams = z.object({ id: anId('amendment request') });
const PatientParams = z.object({ id: anId('patient') });

export function registerNotesRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/records/:id/sign',
      summary:
        'Sign a draft note {expectedVersion}: its author only, with a re-authentication within 5 minutes; a signed note cannot be edited. 200 {signedAt}',
      tags: TAGS,
      auth: 'session',
      stepUp: true,
      params: RecordParams,
      body: z.object({ expectedVersion: z.number().int().min(1) }).strict(),
      handler: async (req) => {
        const r = await named(chart.signNote(req.ctx, req.params.id, req.body.expectedVersion), inBody);
        return { signedAt: r.signedAt.toISOString() };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/records/:id/amendments',
      summary:
        'Amend a signed note {reason, body}: a new note signed by the caller, linked to the original, which stays readable. Re-authentication within 5 minutes. 201 {id, version}',
      tags: TAGS,
      auth: 'session',
      stepUp: true,
      params: RecordParams,
      body: z.object({ reason: z.string(), body: z.record(z.string(), z.unknown()) }).strict(),
      handler: async (req, reply) =>
        reply.code(201).send(await named(chart.amendNote(req.ctx, req.params.id, req.body), inBody)),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/records/:id/amendment-requests',
      summary:
        "Record a patient's request to amend a record {text} (ONC 170.315(d)(4)), by staff who may read the record. 201 {id}",
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      body: z.object({ text: z.string() }).strict(),
      handler: async (req, reply) =>
        reply.code(201).send(await named(chart.requestAmendment(req.ctx, req.params.id, req.body), inBody)),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/amendment-requests/:id/decision',
      summary:
        'Accept {decision: "accepted", amendmentId} (a signed amendment of that record) or deny {decision: "denied", reason}; once. 204',
      tags: TAGS,
      auth: 'session',
      params: RequestParams,
      body: z.object({ decision: z.enum(['accepted', 'denied']) }).loose(),
      handler: async (req, reply) => {
        await named(chart.decideAmendment(req.ctx, req.params.id, req.raw.body), inBody);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/amendment-requests',
      summary:
        "A patient's amendment requests with their texts, status, linked amendment and denial reason, oldest first {requests}",
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => ({ requests: await chart.listAmendmentRequests(req.ctx, req.params.id) }),
    },
    resolve,
  );
}
