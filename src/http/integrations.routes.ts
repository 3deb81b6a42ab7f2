import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { INTEGRATION_STATUSES } from '../integrations/approval.ts';
import { defineRoute, inBody, named, parseInput, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Integrations and the accounting of disclosures (issue 6, item 8). The administrator configures
 * webhook receivers (changes need a step-up; the secret is in the answer to the creation only);
 * one whose allow-list reads about the patient through the gate waits for a privacy officer,
 * another person, to approve or reject it after a step-up (the two-person rule, approval.ts; no
 * route-level role list on those two: the service admits only an active privacy officer and
 * audits every denial with the integration's id). The officer may list integrations too. The
 * accounting of disclosures of a patient (HIPAA 45 CFR 164.528) is read through the gate by
 * the privacy officer and by the care team members who answer the patient's right of access.
 * Any other caller, and any unknown or malformed id, gets the same audited 404.
 */
const ADMIN = ['admin'] as const;
const ADMIN_OR_OFFICER = ['admin', 'privacy_officer'] as const;
/** `pending` is short for `pending-approval`, the privacy officer's queue. */
const StatusQuery = z
  .object({
    status: z
      .enum(
        ['pending', ...INTEGRATION_STATUSES],
        `must be one of pending, ${INTEGRATION_STATUSES.join(', ')}`,
      )
      .optional(),
  })
  .strict();
const ExpectedVersion = z
  .number()
  .int()
  .meta({ description: 'the version reviewed; 412 when the integration changed since' })
  .optional();
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const IntegrationParams = z.object({ id: anId('integration') });
const PatientParams = z.object({ id: anId('patient') });

const FieldList = z.array(z.string()).meta({
  description:
    'Field allow-list: start, end, appointmentId (opaque, per integration), room, clinicianName, patientName, patientEmail, patientPhone. Clinical content (e.g. reason) is refused with a 400 naming it',
});
const EventList = z.array(z.string()).meta({ description: 'Any of booked, rescheduled, cancelled, no-show' });

export function registerIntegrationRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/admin/integrations',
      summary:
        "Integrations of the practice, never their secrets; ?status=pending (the privacy officer's queue), active, rejected or inactive {integrations}. Administrator and privacy officer",
      tags: ['integrations'],
      auth: 'session',
      roles: ADMIN_OR_OFFICER,
      handler: async (req) => {
        const q = parseInput(StatusQuery, req.raw.query ?? {}, 'query');
        const status = q.status === 'pending' ? 'pending-approval' : q.status;
        return { integrations: await s.integrations.list(req.ctx, status ? { status } : {}) };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/integrations',
      summary:
        'Create a webhook integration {name, url (https), fields?, events?, purpose}. 201 {integration, secret}: the signing secret is shown this once. An allow-list with a field read through the gate (patientName, patientEmail, patientPhone, clinicianName) is pending-approval: nothing is sent until a privacy officer approves it. Step-up required',
      tags: ['integrations'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      body: z
        .object({
          name: z.string(),
          url: z.string(),
          fields: FieldList.optional(),
          events: EventList.optional(),
          purpose: z.string(),
        })
        .strict(),
      handler: async (req, reply) =>
        reply.code(201).send(await named(s.integrations.create(req.ctx, req.body), inBody)),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PATCH',
      url: '/api/v1/admin/integrations/:id',
      summary:
        'Change an integration {name?, url?, fields?, events?, purpose?, active?} (the secret stays). Changing the url, fields, events or purpose of one that reads through the gate makes it pending-approval again. Step-up required',
      tags: ['integrations'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      params: IntegrationParams,
      body: z
        .object({
          name: z.string().optional(),
          url: z.string().optional(),
          fields: FieldList.optional(),
          events: EventList.optional(),
          purpose: z.string().optional(),
          active: z.boolean().optional(),
        })
        .strict(),
      handler: async (req) => named(s.integrations.update(req.ctx, req.params.id, req.body), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/admin/integrations/:id',
      summary:
        'Deactivate an integration: nothing more is sent, pending deliveries are given up; it stays listed for the accounting. Step-up required. 204',
      tags: ['integrations'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      params: IntegrationParams,
      handler: async (req, reply) => {
        await s.integrations.deactivate(req.ctx, req.params.id);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/integrations/:id/approve',
      summary:
        "Privacy officer: approve the integration's configuration waiting for approval {expectedVersion} (the version reviewed; required) → the integration. Not the administrator who made the change (409); 409 when nothing waits; 412 on a stale expectedVersion. Step-up required; audited",
      tags: ['integrations'],
      auth: 'session',
      stepUp: true,
      params: IntegrationParams,
      body: z.object({ expectedVersion: ExpectedVersion }).strict().optional(),
      handler: async (req) => named(s.integrations.approve(req.ctx, req.params.id, req.body ?? {}), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/integrations/:id/reject',
      summary:
        'Privacy officer: reject a configuration waiting for approval, or withdraw an approval {reason, expectedVersion} (required) → the integration, which sends nothing; the administrator sees the reason. Step-up required; audited',
      tags: ['integrations'],
      auth: 'session',
      stepUp: true,
      params: IntegrationParams,
      body: z.object({ reason: z.string(), expectedVersion: ExpectedVersion }).strict(),
      handler: async (req) => named(s.integrations.reject(req.ctx, req.params.id, req.body), inBody),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/admin/integrations/:id/deliveries',
      summary:
        'The latest webhook deliveries of an integration: status, attempts, last HTTP status, next attempt {deliveries}',
      tags: ['integrations'],
      auth: 'session',
      roles: ADMIN,
      params: IntegrationParams,
      handler: async (req) => ({ deliveries: await s.integrations.deliveries(req.ctx, req.params.id) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/disclosures',
      summary:
        "The patient's accounting of disclosures (HIPAA 164.528): date, recipient, purpose and what was sent, oldest first {disclosures}. Privacy officer, or the care team's clinicians and nurses; audited",
      tags: ['disclosures'],
      auth: 'session',
      params: PatientParams,
      handler: async (req) => {
        const list = await s.custos.chart.listDisclosures(req.ctx, req.params.id);
        const status = await s.integrations.statusOf(
          req.ctx.practiceId,
          list.flatMap((d) => (d.deliveryId ? [d.deliveryId] : [])),
        );
        return {
          disclosures: list.map((d) => ({
            ...d,
            delivery: d.deliveryId ? (status.get(d.deliveryId) ?? null) : null,
          })),
        };
      },
    },
    resolve,
  );
}
