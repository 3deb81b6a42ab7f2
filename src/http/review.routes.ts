import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

const PRIVACY_OFFICER = ['privacy_officer'] as const;

/**
 * Access reviews (HIPAA 164.308(a)(4)): the privacy officer lists every account and certifies
 * or revokes each. Every other role gets a 404; `AccessReviews` checks the role again and
 * audits a denial.
 */
export function registerReviewRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/access-reviews',
      summary:
        'Every account with roles, care-team size, active break-glass grants, last login, dormant and overdue status, and its last review (audited)',
      tags: ['access-reviews'],
      auth: 'session',
      roles: PRIVACY_OFFICER,
      handler: async (req) => s.reviews.list(req.ctx, s.clock()),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/access-reviews/:userId',
      summary:
        "Certify a user's access, or revoke it (disables the account and ends its sessions); recorded and audited. Step-up required",
      tags: ['access-reviews'],
      auth: 'session',
      roles: PRIVACY_OFFICER,
      stepUp: true,
      params: z.object({ userId: z.uuid('must be a user id') }),
      body: z
        .object({
          decision: z.enum(['certified', 'revoked'], 'must be certified or revoked'),
          // A short remark on the decision; never health data (it is stored as entered).
          comment: z.string('must be a string').max(200, 'must be at most 200 characters').optional(),
        })
        .strict(),
      handler: async (req, reply) => {
        const { decision, comment } = req.body;
        const review =
          decision === 'certified'
            ? await s.reviews.certify(req.ctx, req.params.userId, comment)
            : await s.reviews.revoke(req.ctx, req.params.userId, comment);
        return reply.code(201).send(review);
      },
    },
    resolve,
  );
}
