import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ICD10_CM } from '../codes/icd10.ts';
import { validationError } from '../errors.ts';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/**
 * ICD-10-CM code search for diagnosis entry. The code list holds no patient data, but what a
 * clinician looks up while a patient sits in front of them says something about that patient:
 * the text travels in the body, never in the URL, and is never logged.
 */
export function registerCodeRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/codes/icd10/search',
      summary:
        'Search the ICD-10-CM list by code prefix (F32, F32.1) or title words (maj depr recur) {text, limit?: 1..50 (20)}. 200 {system, source: starter|imported, total, codes: [{code, display}]}',
      tags: ['codes'],
      auth: 'session',
      roles: ['clinician', 'nurse', 'billing'],
      body: z
        .object({
          text: z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters'),
          limit: z.number().int().min(1).max(50).optional(),
        })
        .strict(),
      handler: async (req) => {
        if (req.raw.url.includes('?')) {
          throw validationError('query', 'search terms travel in the request body, never in the URL');
        }
        const r = s.codes.search(req.body.text, req.body.limit ?? 20);
        return { system: ICD10_CM, source: s.codes.source, total: r.total, codes: r.codes };
      },
    },
    resolve,
  );
}
