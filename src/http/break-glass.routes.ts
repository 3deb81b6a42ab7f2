import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { DISPOSITIONS } from '../access/break-glass.ts';
import { isCustosError, validationError } from '../errors.ts';
import { defineRoute, parseInput, type Resolve } from './route.ts';
import type { Services } from './services.ts';

const TAGS = ['break-glass'] as const;

/**
 * The privacy officer's review of break-the-glass access (src/access/break-glass.ts). No
 * route-level role list: `BreakGlassReviews` admits only an active privacy officer and audits
 * every denial, which a route-level check would not; anyone else gets the same 404 as for an
 * unknown grant. The answers carry ids, usernames, reason categories and times, plus the
 * grant holder's free-text reason and the reviewer's comment, opened for the officer only.
 */
export function registerBreakGlassRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/break-glass/reviews',
      summary:
        'Privacy officer: every break-the-glass grant not yet reviewed, oldest first, with holder (id, username), patient id, reason category and reason, start, expiry, end, active, review due date and overdue (unreviewed longer than breakGlassReviewDays, default 7, after it started) {asOf, breakGlassReviewDays, overdue, grants} (audited)',
      tags: TAGS,
      auth: 'session',
      handler: async (req) => s.breakGlass.queue(req.ctx, s.clock()),
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/break-glass/reviewed',
      summary:
        'Privacy officer: grants reviewed since ?since=ISO date-time (default 90 days ago), oldest review first, with disposition, comment, reviewer and whether the review was late {grants} (audited)',
      tags: TAGS,
      auth: 'session',
      handler: async (req) => {
        const q = parseInput(
          z
            .object({
              since: z.iso
                .datetime({ offset: true, message: 'must be an ISO 8601 date-time with zone' })
                .optional(),
            })
            .strict(),
          req.raw.query ?? {},
          'query',
        );
        const since = q.since ? new Date(q.since) : new Date(s.clock().getTime() - 90 * 86_400_000);
        return { grants: await s.breakGlass.reviewed(req.ctx, { since }) };
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/break-glass/:id/review',
      summary:
        'Privacy officer: judge one grant appropriate or inappropriate (a comment is required for inappropriate; it is sealed, never audited), once: a second review is 409; nobody reviews their own. {id, disposition, reviewedBy, reviewedAt} (audited)',
      tags: TAGS,
      auth: 'session',
      params: z.object({
        id: z.string().meta({ format: 'uuid', description: 'grant id; any other value is answered 404' }),
      }),
      body: z
        .object({
          disposition: z.enum(DISPOSITIONS, 'must be appropriate or inappropriate'),
          comment: z.string('must be a string').max(2000, 'must be at most 2000 characters').optional(),
        })
        .strict(),
      handler: async (req) => {
        try {
          return await s.breakGlass.review(req.ctx, req.params.id, req.body);
        } catch (e) {
          throw prefixed(e);
        }
      },
    },
    resolve,
  );
}

/** The service names `comment` and `id`; the client sent them as `body.comment` and `params.id`. */
function prefixed(e: unknown): unknown {
  if (!isCustosError(e, 'CUSTOS_ERR_VALIDATION') || e.field === undefined) {
    return e;
  }
  const problem = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
  return validationError(e.field === 'id' ? 'params.id' : `body.${e.field}`, problem);
}
