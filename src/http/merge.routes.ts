import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { defineRoute, inBody, named, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Merging duplicate patients over HTTPS (issue 6 item 1; docs/merge.md): merge a duplicate into
 * the patient kept, undo a merge, list a patient's merges. Merging and undoing move clinical data
 * between two charts, so both need a re-authentication within the last 5 minutes (step-up). The
 * gate decides who may (a clinician on both care teams) and audits every call; a refusal is the
 * same 404 as an unknown id.
 */
const TAGS = ['merges'] as const;
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const PatientParams = z.object({ id: anId('patient') });
const MergeParams = z.object({ id: anId('merge') });

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function registerMergeRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/merge',
      summary:
        'Merge the duplicate {sourceId} into this patient (kept): its records, documents, amendment requests, appointments and messages move here, its care team joins this one, it becomes inactive. Step-up. 200 {mergeId, moved: {records, files, related, careTeam}}',
      tags: TAGS,
      auth: 'session',
      stepUp: true,
      params: PatientParams,
      body: z
        .object({
          sourceId: z
            .uuid('must be a patient id')
            .meta({ description: 'the duplicate patient, merged into the one in the path' }),
        })
        .strict(),
      handler: async (req) => named(chart.mergePatients(req.ctx, req.body.sourceId, req.params.id), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/merges/:id/undo',
      summary:
        'Undo a merge, once: what it moved goes back to the duplicate (with amendments made to it since), which is active again; care-team members it added end now. Step-up. 204',
      tags: TAGS,
      auth: 'session',
      stepUp: true,
      params: MergeParams,
      handler: async (req, reply) => {
        await chart.unmergePatients(req.ctx, req.params.id);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/merges',
      summary:
        'The merges this patient took part in, as source or target, oldest first {merges: [{id, sourceId, targetId, mergedBy, mergedAt, unmergedBy, unmergedAt, records}]}',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => ({
        merges: (await chart.listMerges(req.ctx, req.params.id)).map((m) => ({
          ...m,
          mergedAt: m.mergedAt.toISOString(),
          unmergedAt: iso(m.unmergedAt),
        })),
      }),
    },
    resolve,
  );
}
