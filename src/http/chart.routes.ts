import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { STAFF_ROLES } from '../access/grants.ts';
import { CONSENT_CATEGORIES } from '../access/policy.ts';
import { BREAK_GLASS_MAX_MINUTES, BREAK_GLASS_REASONS } from '../chart/access.service.ts';
import { PatientIdentity, RecordBodies, type RecordKind, RecordKinds, Sensitivity } from '../chart/model.ts';
import { DEACTIVATION_REASONS } from '../chart/patients.service.ts';
import { validationError } from '../errors.ts';
import { defineRoute, inBody, named, parseInput, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * The chart API (System A, staff): patients, clinical records, care teams, consent, the
 * restricted flag, shares, release to the portal, and break-the-glass. Each route validates its
 * input and calls the gate (`services.custos.chart`), which decides with the policy, audits every
 * call (denied ones too) and returns only what the caller's roles may see.
 *
 * - No route-level role list: the policy decides per patient and per record, and a denial must
 *   be audited, which the gate does and a route-level check would not.
 * - "Not allowed" is "not found": a forbidden id, an unknown id and a malformed id (anything
 *   but a UUID, answered by the gate like an unknown one) give the same 404 body.
 * - Search terms travel in the body of a POST, never in the URL (DESIGN.md invariant 5).
 * - Dates are ISO 8601 strings. Fields a role may not see are absent, never masked.
 */

const TAGS = ['chart'] as const;

/** An id in the path; not validated here so that the gate answers a malformed one like a missing one. */
const anId = (what: string) =>
  z.string().meta({ format: 'uuid', description: `${what} id; any other value is answered 404` });
const PatientParams = z.object({ id: anId('patient') });
const RecordParams = z.object({ id: anId('record') });
const GrantParams = z.object({ id: anId('break-glass grant') });
const MemberParams = z.object({ id: anId('patient'), userId: anId('user') });
const ShareParams = z.object({ id: anId('record'), userId: anId('user') });

const version = (what: string) =>
  z
    .number('must be a number')
    .int('must be an integer')
    .min(1, 'must be at least 1')
    .meta({ description: `the ${what} version read (optimistic concurrency; stale: 412)` });
const isoDateTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with zone' });
const userIds = z.array(z.uuid('must be user ids')).max(50, 'must have at most 50 entries');

const NewPatient = z
  .object({
    identity: PatientIdentity,
    careTeam: userIds.optional().meta({ description: 'user ids joining the care team from now' }),
    restricted: z.boolean('must be true or false').optional(),
  })
  .strict();

/** Mirrors the gate's search query (src/chart/patients.service.ts), which checks it again. */
const SearchQuery = z
  .object({
    familyPrefix: z.string().trim().min(3, 'must have at least 3 characters').max(100).optional(),
    family: z.string().trim().min(1).max(100).optional(),
    birthDate: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD')
      .optional()
      .meta({ description: 'with `family` only' }),
    identifier: z
      .object({ type: z.enum(['mrn', 'national', 'insurance']), value: z.string().trim().min(1).max(100) })
      .strict()
      .optional(),
    phone: z.string().trim().min(4).max(40).optional(),
    email: z.string().trim().min(3).max(254).optional(),
    limit: z.number().int().min(1).max(200).optional(),
    includeInactive: z
      .boolean()
      .optional()
      .meta({ description: 'also deactivated patients (default false)' }),
  })
  .strict();

const kindEnum = z.enum(
  RecordKinds as [RecordKind, ...RecordKind[]],
  `must be one of ${RecordKinds.join(', ')}`,
);
const categories = z.array(z.enum(CONSENT_CATEGORIES)).max(CONSENT_CATEGORIES.length);

const NewRecord = z.discriminatedUnion(
  'kind',
  RecordKinds.map((kind) =>
    z
      .object({
        kind: z.literal(kind),
        body: RecordBodies[kind],
        sensitivity: Sensitivity.optional().meta({
          description: 'normal (default), restricted, psychotherapy',
        }),
        categories: categories
          .optional()
          .meta({ description: 'consent categories beyond those the codes imply' }),
      })
      .strict(),
  ) as unknown as [z.ZodObject, ...z.ZodObject[]],
  { error: `must be one of ${RecordKinds.join(', ')}` },
);

type NewRecordInput = {
  kind: RecordKind;
  body: unknown;
  sensitivity?: Sensitivity;
  categories?: string[];
};

const RecordUpdate = z
  .object({
    expectedVersion: version('record'),
    body: z
      .record(z.string(), z.unknown(), 'must be an object')
      .meta({ description: "the whole new body, in the shape of the record's kind (see POST …/records)" }),
    status: z.enum(['active', 'entered-in-error'], 'must be active or entered-in-error').optional(),
  })
  .strict();

/** Mirrors the gate's consent directives (src/chart/access.service.ts), which checks them again. */
const Directives = z
  .object({
    denyUsers: userIds.optional(),
    denyRoles: z.array(z.enum(STAFF_ROLES)).max(STAFF_ROLES.length).optional(),
    withholdCategories: categories.optional(),
    portalOptOut: z.boolean().optional(),
  })
  .strict();

const BreakGlassRequest = z
  .object({
    reasonCategory: z.enum(BREAK_GLASS_REASONS, `must be one of ${BREAK_GLASS_REASONS.join(', ')}`),
    reason: z.string('must be a string').trim().min(10, 'must say why, in at least 10 characters').max(2000),
    minutes: z
      .number()
      .int()
      .min(5, 'must be at least 5')
      .max(BREAK_GLASS_MAX_MINUTES, `must be at most ${BREAK_GLASS_MAX_MINUTES} (8 hours)`)
      .optional()
      .meta({ description: 'how long the grant lasts (default 60)' }),
  })
  .strict();

const ListQuery = z
  .object({
    kind: kindEnum.optional(),
    limit: z.coerce
      .number('must be a number')
      .int('must be an integer')
      .min(1, 'must be at least 1')
      .max(500, 'must be at most 500')
      .default(100),
    after: z.string().max(200, 'is not a cursor this server returned').optional(),
  })
  .strict();

const under = (from: string, to: string) => (f: string) =>
  f === from || f.startsWith(`${from}.`) || f.startsWith(`${from}[`)
    ? `${to}${f.slice(from.length)}`
    : inBody(f);

const toDate = (iso: string | undefined): Date | undefined => (iso === undefined ? undefined : new Date(iso));

const SEES_IDENTITY =
  'Identity by role: clinician and nurse on the care team, and front desk, see every field; billing sees name, birthDate, sex, identifiers and address; admin and privacy officer get 404.';
const SEES_RECORDS =
  'Records by role: a clinician on the care team sees every record (psychotherapy notes only as author or when shared); a nurse normal-sensitivity records; billing only codes, statuses and dates of encounters, conditions, procedures and medications (no notes, no free text); front desk, admin and privacy officer no records.';

/** Registers the chart routes under /api/v1. */
export function registerChartRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;

  // --- patients (identity store) -------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients',
      summary:
        'Register a patient (clinician, nurse, front desk). A clinician or nurse who registers joins the care team; `careTeam` names further members. 201 {id, version}',
      tags: TAGS,
      auth: 'session',
      body: NewPatient,
      handler: async (req, reply) => {
        const { identity, careTeam, restricted } = req.body;
        const created = await named(
          chart.createPatient(req.ctx, identity, {
            ...(careTeam ? { careTeam } : {}),
            ...(restricted !== undefined ? { restricted } : {}),
          }),
          inBody,
        );
        return reply.code(201).send(created);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/search',
      summary: `Find patients by family-name prefix, family name (+ birth date), identifier, phone or e-mail. Terms go in this body, never in the URL (a query string is refused). Results are only patients the caller may see, with the fields their role shows. ${SEES_IDENTITY} {patients}`,
      tags: TAGS,
      auth: 'session',
      body: SearchQuery,
      handler: async (req) => {
        if (req.raw.url.includes('?')) {
          throw validationError('query', 'search terms travel in the request body, never in the URL');
        }
        return { patients: await named(chart.searchPatients(req.ctx, req.body), under('query', 'body')) };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id',
      summary: `The patient's current identity {id, version, active, createdAt, updatedAt, identity}. ${SEES_IDENTITY}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => chart.readPatient(req.ctx, req.params.id),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/history',
      summary: `Every identity version, oldest first {versions}. ${SEES_IDENTITY}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => ({ versions: await chart.patientHistory(req.ctx, req.params.id) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/patients/:id',
      summary:
        'Write a new identity version (clinician or nurse on the care team, front desk) {id, version}; a stale expectedVersion is 412',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: z.object({ expectedVersion: version('identity'), identity: PatientIdentity }).strict(),
      handler: async (req) => {
        const r = await named(
          chart.updatePatient(req.ctx, req.params.id, req.body.expectedVersion, req.body.identity),
          inBody,
        );
        return { id: req.params.id, version: r.version };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/chart',
      summary: `Identity plus every current record the caller may see {patient, records}, one audit entry. ${SEES_IDENTITY} ${SEES_RECORDS}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => chart.readChart(req.ctx, req.params.id),
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/dossier',
      summary: `The dossier's front page, one audit entry: {patient, sections: {<kind>: {count, latest}} for each clinical section the caller may see, problems (active conditions), medications (active), plans (active therapy plans), recentEncounters (5), drafts (the caller's unsigned notes)}; each item {id, version, ...the fields the caller's role sees}. ${SEES_IDENTITY} ${SEES_RECORDS}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => chart.readDossier(req.ctx, req.params.id),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/deactivate',
      summary: `Close a dossier {reason: ${DEACTIVATION_REASONS.join('|')}} (front desk; clinician or nurse on the care team): it stays readable, searches leave it out unless includeInactive. 200 {active: false}; 409 if inactive already`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: z.object({ reason: z.enum(DEACTIVATION_REASONS) }).strict(),
      handler: async (req) =>
        chart.setPatientActive(req.ctx, req.params.id, { active: false, reason: req.body.reason }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/reactivate',
      summary:
        'Reopen a deactivated dossier (same roles as deactivate). 200 {active: true}; 409 if active already',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => chart.setPatientActive(req.ctx, req.params.id, { active: true }),
    },
    resolve,
  );

  // --- clinical records ------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/records',
      summary: `The patient's current records, oldest first, a page at a time (?kind=encounter|observation|condition|procedure|medication|therapy-plan|note|document, ?limit=1..500 (100), ?after=<next of the previous page>) {records, next: cursor or null}. Pages are cut among the records the caller may see; follow next until null. ${SEES_RECORDS}`,
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => {
        const q = parseInput(ListQuery, req.raw.query ?? {}, 'query');
        return named(
          chart.listRecordsPage(req.ctx, req.params.id, {
            limit: q.limit,
            ...(q.kind ? { kind: q.kind } : {}),
            ...(q.after ? { after: q.after } : {}),
          }),
          (f) => `query.${f}`,
        );
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/records',
      summary:
        'Create a clinical record {kind, body, sensitivity?, categories?} (clinician on the care team; a nurse normal-sensitivity records only). 201 {id, version}',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: NewRecord,
      handler: async (req, reply) => {
        const b = req.body as NewRecordInput;
        const created = await named(
          chart.createRecord(req.ctx, req.params.id, {
            kind: b.kind,
            body: b.body as never,
            ...(b.sensitivity ? { sensitivity: b.sensitivity } : {}),
            ...(b.categories ? { categories: b.categories } : {}),
          }),
          inBody,
        );
        return reply.code(201).send(created);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/records/:id',
      summary: `One record, current version {id, kind, version, sensitivity, authorId, status, createdAt, updatedAt, body}. ${SEES_RECORDS}`,
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      handler: async (req) => chart.readRecord(req.ctx, req.params.id),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/records/:id/history',
      summary: `Every version of one record, oldest first {versions}. ${SEES_RECORDS}`,
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      handler: async (req) => ({ versions: await chart.recordHistory(req.ctx, req.params.id) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/records/:id',
      summary:
        'Write a new version of a record (old versions stay); status entered-in-error instead of deleting. Those who may create it; a psychotherapy note only its author. {id, version}; stale expectedVersion 412',
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      body: RecordUpdate,
      handler: async (req) => {
        const r = await named(
          chart.updateRecord(req.ctx, req.params.id, {
            expectedVersion: req.body.expectedVersion,
            body: req.body.body,
            ...(req.body.status ? { status: req.body.status } : {}),
          }),
          inBody,
        );
        return { id: req.params.id, version: r.version };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/records/:id/shares',
      summary:
        'The author of a psychotherapy note shares it (read only) with a colleague of the practice {recordId, userId, shared}',
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      body: z.object({ userId: z.uuid('must be a user id') }).strict(),
      handler: async (req) => {
        await named(chart.shareRecord(req.ctx, req.params.id, req.body.userId, true), inBody);
        return { recordId: req.params.id, userId: req.body.userId, shared: true };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/records/:id/shares/:userId',
      summary: 'The author stops sharing a psychotherapy note with a colleague. 204',
      tags: TAGS,
      auth: 'session',
      params: ShareParams,
      handler: async (req, reply) => {
        await named(
          chart.shareRecord(req.ctx, req.params.id, req.params.userId, false),
          (f) => `params.${f}`,
        );
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/records/:id/release',
      summary:
        'Release a record to the patient portal, or withdraw it (clinician on the care team; never a psychotherapy note) {id, released}',
      tags: TAGS,
      auth: 'session',
      params: RecordParams,
      body: z.object({ released: z.boolean('must be true or false') }).strict(),
      handler: async (req) => {
        await named(chart.releaseRecord(req.ctx, req.params.id, req.body.released), inBody);
        return { id: req.params.id, released: req.body.released };
      },
    },
    resolve,
  );

  // --- care team, consent, restriction --------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/care-team',
      summary:
        'Past and present care-team memberships {members: [{userId, username, roles, startsAt, endsAt, addedBy, endedBy, current}]} (whoever may read the identity)',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => ({ members: await chart.listCareTeam(req.ctx, req.params.id) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/care-team',
      summary:
        'Add a user to the care team from startsAt (default now) until endsAt (default open) (clinician on the care team, front desk). 201 {patientId, userId}',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: z
        .object({
          userId: z.uuid('must be a user id'),
          startsAt: isoDateTime.optional(),
          endsAt: isoDateTime.optional(),
        })
        .strict(),
      handler: async (req, reply) => {
        const startsAt = toDate(req.body.startsAt);
        const endsAt = toDate(req.body.endsAt);
        await named(
          chart.addCareTeamMember(req.ctx, req.params.id, req.body.userId, {
            ...(startsAt ? { startsAt } : {}),
            ...(endsAt ? { endsAt } : {}),
          }),
          inBody,
        );
        return reply.code(201).send({ patientId: req.params.id, userId: req.body.userId });
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/patients/:id/care-team/:userId',
      summary:
        "End a user's care-team membership now; the history stays (clinician on the care team, front desk). 204",
      tags: TAGS,
      auth: 'session',
      params: MemberParams,
      handler: async (req, reply) => {
        await named(chart.endCareTeamMember(req.ctx, req.params.id, req.params.userId), (f) => `params.${f}`);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/consent',
      summary:
        "The patient's consent directives {version, directives: {denyUsers, denyRoles, withholdCategories, portalOptOut}, updatedAt, updatedBy}; version 0 when none (clinician on the care team, front desk, privacy officer)",
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req) => chart.readConsent(req.ctx, req.params.id),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/patients/:id/consent',
      summary:
        'Replace the consent directives; expectedVersion is the version read (0 for none); stale 412. Takes effect on the next request {version}',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: z
        .object({
          expectedVersion: z.number('must be a number').int().min(0, 'must be 0 or more'),
          directives: Directives,
        })
        .strict(),
      handler: async (req) => {
        return named(
          chart.setConsent(req.ctx, req.params.id, req.body.expectedVersion, req.body.directives),
          under('consent', 'body.directives'),
        );
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/patients/:id/restricted',
      summary:
        'Flag a patient restricted (staff member, public figure: explicit care-team membership needed for every role) or lift the flag (clinician on the care team, privacy officer) {id, restricted}',
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      body: z.object({ restricted: z.boolean('must be true or false') }).strict(),
      handler: async (req) => {
        await named(chart.setRestricted(req.ctx, req.params.id, req.body.restricted), inBody);
        return { id: req.params.id, restricted: req.body.restricted };
      },
    },
    resolve,
  );

  // --- break-the-glass -------------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/patients/:id/break-glass',
      summary:
        'Emergency access to a patient the caller cannot otherwise reach (clinician or nurse only), for `minutes` (default 60, at most 480). The reason is sealed; every access under the grant is audited as emergency and the privacy officer reviews it. Step-up required. 201 {id, patientId, startsAt, expiresAt, consentOverride}; 409 when already on the care team',
      tags: TAGS,
      auth: 'session',
      stepUp: true,
      params: PatientParams,
      body: BreakGlassRequest,
      handler: async (req, reply) => {
        const grant = await named(chart.requestBreakGlass(req.ctx, req.params.id, req.body), inBody);
        return reply.code(201).send(grant);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/break-glass/:id/end',
      summary:
        'End a break-the-glass grant before it expires (its holder, or the privacy officer) {id, endedAt}; 409 when already ended or expired',
      tags: TAGS,
      auth: 'session',
      params: GrantParams,
      handler: async (req) => s.breakGlass.end(req.ctx, req.params.id),
    },
    resolve,
  );
}
