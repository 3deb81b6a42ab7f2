import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { securityEvent } from '../identity/events.ts';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

const ADMIN = ['admin'] as const;
const userId = z.object({ id: z.uuid('must be a user id') });

/** Account administration and address blocks: the `admin` role only; no chart content here. */
export function registerAdminRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/admin/users',
      summary: 'Accounts of the practice',
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      handler: async (req) => ({ users: await s.accounts.list(req.ctx.practiceId) }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/users',
      summary:
        'Create an account; returns a one-time enrollment link valid 24 hours (never a password). Step-up required',
      stepUp: true,
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      body: z
        .object({
          username: z.string(),
          roles: z.array(z.string()).min(1),
          familyName: z.string().max(100).optional(),
        })
        .strict(),
      handler: async (req, reply) => {
        const r = await s.accounts.add(req.ctx, req.body);
        return reply.code(201).send({
          id: r.userId,
          username: r.username,
          enrollmentLink: `https://${req.raw.headers.host}/enroll#${r.token}`,
          expiresAt: r.expiresAt.toISOString(),
        });
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/users/:id/roles',
      summary: "Replace a user's roles; ends that user's sessions. Step-up required",
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      params: userId,
      body: z.object({ roles: z.array(z.string()).min(1) }).strict(),
      handler: async (req, reply) => {
        await s.accounts.setRoles(req.ctx, req.params.id, req.body.roles);
        return reply.code(204).send();
      },
    },
    resolve,
  );
  for (const action of ['disable', 'enable', 'unlock'] as const) {
    defineRoute(
      app,
      {
        method: 'POST',
        url: `/api/v1/admin/users/:id/${action}`,
        summary: `${action[0]?.toUpperCase()}${action.slice(1)} an account (audited)`,
        tags: ['admin'],
        auth: 'session',
        roles: ADMIN,
        params: userId,
        handler: async (req, reply) => {
          await s.accounts[action](req.ctx, req.params.id);
          return reply.code(204).send();
        },
      },
      resolve,
    );
  }
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/admin/users/:id/reset',
      summary:
        'Clear password and second factor, end sessions, and issue a new enrollment link. Step-up required',
      stepUp: true,
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      params: userId,
      handler: async (req) => {
        const r = await s.accounts.reset(req.ctx, req.params.id);
        return {
          enrollmentLink: `https://${req.raw.headers.host}/enroll#${r.token}`,
          expiresAt: r.expiresAt.toISOString(),
        };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/admin/settings/sessions',
      summary:
        "Set the practice's session timeouts (idle 1–60 minutes, absolute 1–24 hours). Step-up required",
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      body: z
        .object({ idleTimeoutMinutes: z.number().optional(), absoluteTimeoutHours: z.number().optional() })
        .strict(),
      handler: async (req) => {
        const set = await s.settings.setSessionSettings(req.ctx.practiceId, req.body);
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'settings-changed',
            resourceType: 'practice',
            resourceId: req.ctx.practiceId,
            outcome: 'success',
            detail: { ...set },
          },
          s.clock(),
        );
        return s.settings.sessionLimits(req.ctx.practiceId);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/api/v1/admin/settings/access',
      summary:
        "Set the practice's access-review periods (dormant after 7–365 days, review every 7–730 days, break-glass review within 1–90 days). Step-up required",
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      stepUp: true,
      body: z
        .object({
          dormantDays: z.number().optional(),
          reviewIntervalDays: z.number().optional(),
          breakGlassReviewDays: z.number().optional(),
        })
        .strict(),
      handler: async (req) => {
        const set = await s.settings.setAccessSettings(req.ctx.practiceId, req.body);
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'settings-changed',
            resourceType: 'practice',
            resourceId: req.ctx.practiceId,
            outcome: 'success',
            detail: { ...set },
          },
          s.clock(),
        );
        return s.settings.accessSettings(req.ctx.practiceId);
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/admin/blocks',
      summary: 'Blocked addresses',
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      handler: async () => ({ blocks: await s.blocks.active() }),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/admin/blocks/:address',
      summary: 'Lift the block of an address (audited)',
      tags: ['admin'],
      auth: 'session',
      roles: ADMIN,
      params: z.object({ address: z.union([z.ipv4(), z.ipv6()], 'must be an IP address') }),
      handler: async (req, reply) => {
        const n = await s.blocks.lift(req.params.address, req.ctx.actor.id);
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'ip-unblocked',
            resourceType: 'address',
            resourceId: req.params.address,
            outcome: n > 0 ? 'success' : 'denied',
            ...(n > 0 ? {} : { reason: 'not-blocked' }),
          },
          s.clock(),
        );
        return reply
          .code(n > 0 ? 204 : 404)
          .send(
            n > 0 ? undefined : { error: { code: 'CUSTOS_ERR_NOT_FOUND', message: 'address not blocked' } },
          );
      },
    },
    resolve,
  );
}
