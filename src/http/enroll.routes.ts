import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { securityContext } from '../identity/events.ts';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

const token = z.string().min(20).max(100);

/**
 * Enrollment with the one-time link from `custos user add`: choose a password, enroll TOTP,
 * confirm with a code and receive the recovery codes (shown once). The token travels in the
 * body (the link carries it in the URL fragment, which browsers never send).
 */
export function registerEnrollRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/enroll/info',
      summary: 'Which step of enrollment the link is at',
      tags: ['enrollment'],
      auth: 'none',
      body: z.object({ token }).strict(),
      handler: async (req) => s.accounts.enrollmentInfo(req.body.token),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/enroll/password',
      summary:
        'Choose a password (NIST SP 800-63B: 12–128 characters, not a common or breached one, not containing the username)',
      tags: ['enrollment'],
      auth: 'none',
      body: z.object({ token, password: z.string().max(1024) }).strict(),
      handler: async (req, reply) => {
        await s.accounts.enrollPassword(req.body.token, req.body.password);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/enroll/totp',
      summary: 'Create the authenticator secret: QR code (SVG) and manual key',
      tags: ['enrollment'],
      auth: 'none',
      body: z.object({ token }).strict(),
      handler: async (req) => s.accounts.enrollTotp(req.body.token),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/enroll/confirm',
      summary:
        'Confirm the authenticator with a current code; returns 10 single-use recovery codes (shown once)',
      tags: ['enrollment'],
      auth: 'none',
      body: z.object({ token, code: z.string().min(1).max(20) }).strict(),
      handler: async (req) =>
        s.accounts.confirmTotp(req.body.token, req.body.code, {
          ctx: securityContext(req.raw.custosMeta, { id: 'enrolling' }),
        }),
    },
    resolve,
  );
}
