import { randomUUID } from 'node:crypto';
import cookie from '@fastify/cookie';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { type AccessContext, accessContext, type Purpose } from '../access/context.ts';
import { CustosError, isCustosError, notFound } from '../errors.ts';
import { detectInjection } from '../guard/injection.ts';
import { type RequestMeta, securityContext, securityEvent, userAgentHash } from '../identity/events.ts';
import { hashSessionId } from '../identity/sessions.ts';
import { registerAdminRoutes } from './admin.routes.ts';
import { registerAccountRoutes, registerAuthRoutes } from './auth.routes.ts';
import { registerBreakGlassRoutes } from './break-glass.routes.ts';
import { registerChartRoutes } from './chart.routes.ts';
import { registerCodeRoutes } from './codes.routes.ts';
import { MFA_COOKIE, SESSION_COOKIE } from './cookies.ts';
import { registerEnrollRoutes } from './enroll.routes.ts';
import { registerExportRoutes } from './export.routes.ts';
import { registerFileRoutes } from './files.routes.ts';
import { registerIntegrationRoutes } from './integrations.routes.ts';
import { registerMergeRoutes } from './merge.routes.ts';
import { registerMessageRoutes } from './messages.routes.ts';
import { registerMetaRoutes } from './meta.routes.ts';
import { registerNotesRoutes } from './notes.routes.ts';
import { registerPasskeyRoutes } from './passkey.routes.ts';
import { registerReviewRoutes } from './review.routes.ts';
import type { Auth, Resolve } from './route.ts';
import { registerSchedulingRoutes } from './scheduling.routes.ts';
import type { Services } from './services.ts';
import { CIPHERS } from './tls.ts';

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface ServerOptions {
  readonly tls: { readonly cert: string; readonly key: string };
  /** Trusted proxy addresses whose X-Forwarded-For is believed (`--behind-proxy`); none by default. */
  readonly trustedProxies?: readonly string[];
  readonly bodyLimit?: number;
  /** Largest file an upload may carry, in bytes (default 25 MiB; files.routes.ts). */
  readonly uploadLimit?: number;
  /** One line per request to this sink (method, route pattern, status, ms, request id: no ids, no query). */
  readonly log?: (line: string) => void;
  /** Receives unexpected errors (tests print them; production logs only the class). */
  readonly onInternalError?: (error: unknown) => void;
}

declare module 'fastify' {
  interface FastifyRequest {
    custosMeta: RequestMeta;
  }
}

/**
 * The clinic's HTTPS server (System A). TLS 1.2 minimum, strict security headers, closed CORS,
 * body limits, same-origin check on unsafe methods, address blocks and injection detection
 * before any route runs, and one error boundary that never leaks detail.
 */
export async function buildServer(services: Services, options: ServerOptions): Promise<FastifyInstance> {
  const { custos } = services;
  const app = Fastify({
    https: {
      cert: options.tls.cert,
      key: options.tls.key,
      minVersion: 'TLSv1.2',
      ciphers: CIPHERS,
      honorCipherOrder: true,
    },
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy:
      options.trustedProxies && options.trustedProxies.length > 0 ? [...options.trustedProxies] : false,
    logger: false,
    genReqId: () => randomUUID(),
    // Validation is done with zod in each route; ajv would answer in another shape.
    ajv: { customOptions: { strict: false } },
  });
  app.setValidatorCompiler(() => () => true);

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
      },
    },
    strictTransportSecurity: { maxAge: 31536000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  });
  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Custos clinic API', version: '1' },
      components: { securitySchemes: { session: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE } } },
    },
  });

  app.addHook('onRequest', async (req, reply) => {
    req.custosMeta = {
      practiceId: custos.practiceId,
      clientAddress: req.ip,
      userAgentHash: userAgentHash(req.headers['user-agent']),
      requestId: req.id,
    };
    // Blocked addresses are refused at once: no parsing, no hashing, no database beyond this check.
    if (await services.blocks.isBlocked(req.ip)) {
      return reply.code(403).send({
        error: {
          code: 'CUSTOS_ERR_BLOCKED',
          message: 'this address is blocked; ask the practice administrator',
        },
      });
    }
    if (UNSAFE.has(req.method)) {
      const origin = req.headers.origin;
      if (!origin || origin !== `https://${req.headers.host}`) {
        return reply.code(403).send({
          error: {
            code: 'CUSTOS_ERR_CSRF',
            message: 'unsafe requests need an Origin header of this server',
          },
        });
      }
    }
  });

  app.addHook('preHandler', async (req, reply) => {
    const hit = detectInjection({
      method: req.method,
      path: req.url.split('?')[0] ?? '',
      query: req.query as Record<string, string>,
      headers: req.headers,
      body: req.body,
    });
    if (!hit) {
      return;
    }
    const meta = req.custosMeta;
    const now = services.clock();
    await securityEvent(
      custos.database.db,
      securityContext(meta, { id: 'unknown' }),
      {
        action: 'injection-attempt',
        resourceType: 'request',
        resourceId: req.routeOptions.url ?? null,
        outcome: 'denied',
        reason: hit.rule,
        detail: { location: hit.location },
      },
      now,
    );
    await services.blocks.strike(meta.clientAddress, 'injection');
    const s = await services.blocks.strikes(
      meta.clientAddress,
      'injection',
      services.policy.injectionWindowMs,
    );
    if (s.count >= services.policy.injectionStrikes) {
      await services.blocks.block(meta.clientAddress, 'injection', services.policy.blockMs);
      await securityEvent(
        custos.database.db,
        securityContext(meta, { id: 'system', kind: 'system' }),
        {
          action: 'ip-blocked',
          resourceType: 'address',
          resourceId: meta.clientAddress,
          outcome: 'success',
          reason: 'injection',
          detail: { strikes: s.count },
        },
        now,
      );
    }
    return reply.code(400).send({
      error: {
        code: 'CUSTOS_ERR_REJECTED',
        message: `request rejected (${hit.location})`,
        field: hit.location,
      },
    });
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (req.url.startsWith('/api/')) {
      reply.header('cache-control', 'no-store');
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    options.log?.(
      `${req.method} ${req.routeOptions.url ?? '-'} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)}ms ${req.id}`,
    );
  });

  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ error: { code: 'CUSTOS_ERR_NOT_FOUND', message: 'no such route' } }),
  );
  app.setErrorHandler((error, req, reply) => {
    if (isCustosError(error)) {
      return reply.code(error.status).send({
        error: { code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}) },
      });
    }
    const e = error as { statusCode?: number; code?: string };
    if (e.statusCode === 413) {
      return reply
        .code(413)
        .send({ error: { code: 'CUSTOS_ERR_TOO_LARGE', message: 'request body is too large' } });
    }
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) {
      // Fastify's own client errors (bad JSON, wrong content type): the code, never the input.
      return reply.code(e.statusCode).send({
        error: { code: 'CUSTOS_ERR_BAD_REQUEST', message: `bad request (${e.code ?? 'malformed'})` },
      });
    }
    options.log?.(`error ${req.id} ${(error as Error).name}`);
    options.onInternalError?.(error);
    return reply
      .code(500)
      .send({ error: { code: 'CUSTOS_ERR_INTERNAL', message: 'internal error', requestId: req.id } });
  });

  const resolveCtx: Resolve = (req, auth, roles, stepUp) =>
    resolveContext(services, req, auth, roles, stepUp ?? false);
  registerMetaRoutes(app);
  registerAuthRoutes(app, services, resolveCtx);
  registerAccountRoutes(app, services, resolveCtx);
  registerEnrollRoutes(app, services, resolveCtx);
  registerAdminRoutes(app, services, resolveCtx);
  registerPasskeyRoutes(app, services, resolveCtx);
  registerNotesRoutes(app, services, resolveCtx);
  registerMessageRoutes(app, services, resolveCtx);
  registerReviewRoutes(app, services, resolveCtx);
  registerChartRoutes(app, services, resolveCtx);
  registerMergeRoutes(app, services, resolveCtx);
  registerSchedulingRoutes(app, services, resolveCtx);
  registerFileRoutes(app, services, resolveCtx, {
    ...(options.uploadLimit !== undefined ? { uploadLimit: options.uploadLimit } : {}),
  });
  registerCodeRoutes(app, services, resolveCtx);
  registerBreakGlassRoutes(app, services, resolveCtx);
  registerExportRoutes(app, services, resolveCtx);
  registerIntegrationRoutes(app, services, resolveCtx);
  return app;
}

/**
 * Builds the request's frozen AccessContext from its session cookie, or refuses. An expired
 * session is ended and audited (`session-timeout`); a missing role is a 404, like any denial.
 */
async function resolveContext(
  services: Services,
  req: FastifyRequest,
  auth: Auth,
  roles: readonly string[] | undefined,
  stepUp: boolean,
): Promise<AccessContext | undefined> {
  if (auth === 'none') {
    return undefined;
  }
  const meta = req.custosMeta;
  const token = req.cookies[auth === 'mfa-pending' ? MFA_COOKIE : SESSION_COOKIE];
  const unauthenticated = new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'log in first');
  if (!token) {
    throw unauthenticated;
  }
  const check = await services.sessions.check(token);
  if (!check.ok) {
    if (check.reason === 'idle-timeout' || check.reason === 'absolute-timeout') {
      const row = await services.custos.database.db
        .selectFrom('sessions')
        .select(['user_id', 'id_hash'])
        .where('id_hash', '=', hashSessionId(token))
        .executeTakeFirst();
      await securityEvent(
        services.custos.database.db,
        securityContext(meta, { id: row?.user_id ?? 'unknown' }),
        {
          action: 'session-timeout',
          resourceType: 'session',
          resourceId: row ? row.id_hash.subarray(0, 16).toString('hex') : null,
          outcome: 'success',
          reason: check.reason,
        },
        services.clock(),
      );
    }
    throw unauthenticated;
  }
  const s = check.session;
  if (s.kind !== (auth === 'mfa-pending' ? 'mfa-pending' : 'full')) {
    throw unauthenticated;
  }
  const user = await services.custos.database.db
    .selectFrom('users')
    .select(['id', 'roles', 'status'])
    .where('id', '=', s.userId)
    .executeTakeFirst();
  if (user?.status !== 'active') {
    throw unauthenticated;
  }
  if (roles && roles.length > 0 && !user.roles.some((r) => roles.includes(r))) {
    // A route the user's roles do not reach: the same 404 as a missing resource, and audited.
    await securityEvent(
      services.custos.database.db,
      securityContext(meta, { id: user.id }),
      {
        action: 'route-denied',
        resourceType: 'route',
        resourceId: req.routeOptions.url ?? null,
        outcome: 'denied',
        reason: 'role',
      },
      services.clock(),
    );
    throw notFound('resource');
  }
  if (
    stepUp &&
    !(s.reauthAt && services.clock().getTime() - s.reauthAt.getTime() <= services.policy.stepUpMs)
  ) {
    throw new CustosError(
      'CUSTOS_ERR_STEP_UP',
      'this action needs a recent re-authentication: POST /api/v1/auth/reauth with password and code',
    );
  }
  return accessContext({
    actor: { kind: 'user', id: user.id },
    role: user.roles.join(','),
    practiceId: s.practiceId,
    purpose: purposeOf(user.roles),
    sessionId: s.idHash.subarray(0, 16).toString('hex'),
    ...(s.reauthAt ? { reauthenticatedAt: s.reauthAt } : {}),
    clientAddress: meta.clientAddress,
    ...(meta.userAgentHash ? { userAgentHash: meta.userAgentHash } : {}),
    requestId: meta.requestId,
  });
}

/**
 * The purpose of use a staff request is recorded with (HL7 PurposeOfUse): care for clinicians
 * and nurses, payment for billing, audit for the privacy officer, operations otherwise.
 * Break-the-glass access is recorded as `emergency` by the gate.
 */
export function purposeOf(roles: readonly string[]): Purpose {
  if (roles.includes('clinician') || roles.includes('nurse')) {
    return 'treatment';
  }
  if (roles.includes('billing')) {
    return 'payment';
  }
  if (roles.includes('privacy_officer')) {
    return 'audit';
  }
  return 'operations';
}
