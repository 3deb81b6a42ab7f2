import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CustosError, notFound } from '../errors.ts';
import { parseNewPassword } from '../identity/accounts.ts';
import { securityEvent } from '../identity/events.ts';
import { cookieOptions, MFA_COOKIE, SESSION_COOKIE } from './cookies.ts';
import { loginFailed, sessionView, setCookie, startSession } from './login-response.ts';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

/** Login (password, then second factor), logout, the session's remaining time, own sessions. */
export function registerAuthRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/login',
      summary: 'Step 1: username and password; sets a short-lived cookie for the second factor',
      tags: ['auth'],
      auth: 'none',
      body: z
        .object({ username: z.string().min(1).max(200), password: z.string().min(1).max(1024) })
        .strict(),
      handler: async (req, reply) => {
        const r = await s.login.password(req.raw.custosMeta, req.body);
        if (!r.ok) {
          if (r.reason === 'throttled') {
            throw new CustosError(
              'CUSTOS_ERR_THROTTLED',
              'too many login attempts from this address; wait a minute',
            );
          }
          if (r.reason === 'blocked') {
            return reply.code(403).send({
              error: {
                code: 'CUSTOS_ERR_BLOCKED',
                message: 'this address is blocked; ask the practice administrator',
              },
            });
          }
          throw loginFailed();
        }
        setCookie(reply, MFA_COOKIE, r.token, s.policy.mfaPendingMs);
        return { next: 'second-factor' };
      },
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/second-factor',
      summary: 'Step 2: a TOTP code or a recovery code; starts the session (new id)',
      tags: ['auth'],
      auth: 'none',
      body: z.union([
        z.object({ code: z.string().min(1).max(20) }).strict(),
        z.object({ recoveryCode: z.string().min(1).max(40) }).strict(),
      ]),
      handler: async (req, reply) => {
        const pending = req.raw.cookies[MFA_COOKIE];
        if (!pending) {
          throw new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'enter username and password first');
        }
        const r = await s.login.secondFactor(
          req.raw.custosMeta,
          pending,
          req.body as { code?: string; recoveryCode?: string },
        );
        if (!r.ok) {
          throw loginFailed();
        }
        return startSession(reply, s, r.token);
      },
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/logout',
      summary: 'Ends the session on the server',
      tags: ['auth'],
      auth: 'session',
      handler: async (req, reply) => {
        const token = req.raw.cookies[SESSION_COOKIE] ?? '';
        const check = await s.sessions.check(token, { touch: false });
        if (check.ok) {
          await s.sessions.end(check.session.idHash, 'logout');
        }
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'logout',
            resourceType: 'session',
            resourceId: req.ctx.sessionId ?? null,
            outcome: 'success',
          },
          s.clock(),
        );
        reply.clearCookie(SESSION_COOKIE, cookieOptions);
        return reply.code(204).send();
      },
    },
    resolve,
  );

  // Reading the remaining time must not count as activity, or a warning timer would keep a
  // forgotten session alive forever: this route checks the session without touching it.
  app.get(
    '/api/v1/auth/session',
    {
      schema: { summary: 'The current session and its remaining time (does not extend it)', tags: ['auth'] },
    },
    async (req) => {
      const token = req.cookies[SESSION_COOKIE];
      const check = token ? await s.sessions.check(token, { touch: false }) : undefined;
      if (!check?.ok || check.session.kind !== 'full') {
        throw new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'log in first');
      }
      const user = await s.custos.database.db
        .selectFrom('users')
        .select(['id', 'username', 'roles'])
        .where('id', '=', check.session.userId)
        .executeTakeFirstOrThrow();
      return {
        user: { id: user.id, username: user.username, roles: user.roles },
        ...sessionView(check.session, s.clock()),
      };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/auth/sessions',
      summary: "The caller's open sessions (device, address, last use)",
      tags: ['auth'],
      auth: 'session',
      handler: async (req) => ({
        sessions: await s.sessions.list(req.ctx.actor.id),
        current: req.ctx.sessionId,
      }),
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/auth/sessions/:id',
      summary: "Ends one of the caller's own sessions",
      tags: ['auth'],
      auth: 'session',
      params: z.object({ id: z.string().regex(/^[0-9a-f]{32}$/, 'must be a session handle') }),
      handler: async (req, reply) => {
        const ended = await s.sessions.endByHandle(req.ctx.actor.id, req.params.id, 'revoked-by-user');
        await securityEvent(
          s.custos.database.db,
          req.ctx,
          {
            action: 'session-revoked',
            resourceType: 'session',
            resourceId: req.params.id,
            outcome: ended ? 'success' : 'denied',
            ...(ended ? {} : { reason: 'not-found' }),
          },
          s.clock(),
        );
        if (!ended) {
          throw notFound('session');
        }
        return reply.code(204).send();
      },
    },
    resolve,
  );
}

/** Re-authentication and password change, on the current full session. */
export function registerAccountRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
  const currentSession = async (req: FastifyRequest) => {
    const check = await s.sessions.check(req.cookies[SESSION_COOKIE] ?? '', { touch: false });
    if (!check.ok) {
      throw new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'log in first');
    }
    return check.session;
  };
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/reauth',
      summary:
        'Step-up: confirm password and a current code; sensitive actions accept the session for 5 minutes after',
      tags: ['auth'],
      auth: 'session',
      body: z.object({ password: z.string().min(1).max(1024), code: z.string().min(1).max(20) }).strict(),
      handler: async (req, reply) => {
        const ok = await s.login.stepUp(req.raw.custosMeta, await currentSession(req.raw), req.body);
        if (!ok) {
          throw loginFailed();
        }
        return reply.code(204).send();
      },
    },
    resolve,
  );
  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/password',
      summary: 'Change the password (the current one is required); ends every other session',
      tags: ['auth'],
      auth: 'session',
      body: z
        .object({ oldPassword: z.string().min(1).max(1024), newPassword: z.string().max(1024) })
        .strict(),
      handler: async (req, reply) => {
        const ok = await s.login.changePassword(
          req.raw.custosMeta,
          await currentSession(req.raw),
          req.body,
          (pw, username) => parseNewPassword(pw, username, 'body.newPassword'),
        );
        if (!ok) {
          throw new CustosError('CUSTOS_ERR_VALIDATION', 'body.oldPassword: is not the current password', {
            field: 'body.oldPassword',
          });
        }
        return reply.code(204).send();
      },
    },
    resolve,
  );
}
