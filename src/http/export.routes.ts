import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PURPOSE_CODES } from '../chart/export.service.ts';
import { toFhirBundle } from '../fhir/export.ts';
import { MAX_PASSPHRASE, MIN_PASSPHRASE } from '../files/export-archive.ts';
import { defineRoute, inBody, named, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * Export controls (issue 6 item 9). There is no "export all" button:
 *
 * - `GET /api/v1/patients/:id/export`: one patient's chart as a FHIR R4 Bundle (right of
 *   access), for who the policy gives the export grant on that patient (clinician or nurse on
 *   the care team); psychotherapy notes never. The gate decides and audits, so no role list here.
 * - `POST /api/v1/exports`: every active patient of the practice as an encrypted FHIR NDJSON
 *   archive (src/chart/export.service.ts), for the privacy officer after a step-up, with a
 *   purpose code, a stated purpose and a passphrase (min 16 characters) the archive is locked
 *   with. The passphrase travels in the body only, is never stored or logged, and the server
 *   keeps no copy of the archive.
 * - `GET /api/v1/exports`: the export registry (privacy officer).
 *
 * Other roles get the 404 of a missing route and a `route-denied` entry; the gate checks the
 * role again (against the account) and audits a denial of its own.
 */

const PRIVACY_OFFICER = ['privacy_officer'] as const;
const TAGS = ['exports'] as const;

const ExportRequest = z
  .object({
    purposeCode: z
      .enum(PURPOSE_CODES, `must be one of ${PURPOSE_CODES.join(', ')}`)
      .meta({ description: 'why the practice exports everything; the only purpose the audit trail records' }),
    purpose: z
      .string('must be a string')
      .trim()
      .min(10, 'must state the purpose in at least 10 characters')
      .max(500, 'must be at most 500 characters')
      .meta({ description: 'the stated purpose; sealed in the export registry, never in the audit trail' }),
    passphrase: z
      .string('must be a string')
      .min(MIN_PASSPHRASE, `must have at least ${MIN_PASSPHRASE} characters`)
      .max(MAX_PASSPHRASE, `must have at most ${MAX_PASSPHRASE} characters`)
      .meta({ description: 'locks the archive (scrypt); never stored; `custos export --decrypt` opens it' }),
  })
  .strict();

const PatientParams = z.object({
  id: z.string().meta({ format: 'uuid', description: 'patient id; any other value is answered 404' }),
});

export function registerExportRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const chart = s.custos.chart;
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/patients/:id/export',
      summary:
        "One patient's chart as a FHIR R4 Bundle (collection), as the caller's export grant shows it: clinician or nurse on the care team; psychotherapy notes are never exported. Audited as an export",
      tags: TAGS,
      auth: 'session',
      params: PatientParams,
      handler: async (req, reply) => {
        const { patient, records } = await chart.exportChart(req.ctx, req.params.id);
        return reply
          .type('application/fhir+json')
          .header('content-disposition', `attachment; filename="patient-${patient.id}.json"`)
          .send(JSON.stringify(toFhirBundle(patient, records)));
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/exports',
      summary:
        'Export every active patient of the practice: an encrypted FHIR NDJSON archive (application/octet-stream, attachment; header X-Custos-Export-Id), psychotherapy notes never included. Privacy officer, step-up, stated purpose; audited as one entry with the patient count before any record is read',
      tags: TAGS,
      auth: 'session',
      roles: PRIVACY_OFFICER,
      stepUp: true,
      body: ExportRequest,
      handler: async (req, reply) => {
        const e = await named(chart.exportAll(req.ctx, req.body), inBody);
        return reply
          .type('application/octet-stream')
          .header('content-disposition', `attachment; filename="custos-export-${e.id}.cxa"`)
          .header('x-custos-export-id', e.id)
          .header('x-custos-patient-count', String(e.patientCount))
          .send(e.archive);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/exports',
      summary:
        'The export registry, newest first: who exported, purpose code and stated purpose, patient count, status, size and SHA-256 of the archive (privacy officer; audited)',
      tags: TAGS,
      auth: 'session',
      roles: PRIVACY_OFFICER,
      handler: async (req) => ({ exports: await chart.listExports(req.ctx) }),
    },
    resolve,
  );
}
