import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CustosError, notFound, validationError } from '../errors.ts';
import { MFA_COOKIE, SESSION_COOKIE } from './cookies.ts';
import { loginFailed, startSession } from './login-response.ts';
import { defineRoute, type Resolve } from './route.ts';
import type { Services } from './services.ts';

const b64url = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');

// WebAuthn's JSON forms (W3C WebAuthn L3 §5.1, RegistrationResponseJSON / AuthenticationResponseJSON),
// checked loosely: the fields the verifier needs, with sizes bounded; the rest is the library's to judge.
const common = {
  id: b64url(1400),
  rawId: b64url(1400),
  type: z.literal('public-key'),
  authenticatorAttachment: z.string().max(32).optional(),
  clientExtensionResults: z.object({}).loose().optional(),
};
const registrationBody = z
  .object({
    ...common,
    response: z
      .object({
        clientDataJSON: b64url(4096),
        attestationObject: b64url(16384),
        transports: z.array(z.string().max(32)).max(10).optional(),
      })
      .loose(),
  })
  .loose();
const assertionBody = z
  .object({
    ...common,
    response: z
      .object({
        clientDataJSON: b64url(4096),
        authenticatorData: b64url(4096),
        signature: b64url(2048),
        userHandle: b64url(512).optional(),
      })
      .loose(),
  })
  .loose();

/**
 * Passkeys (WebAuthn) as a second factor: adding, listing and removing one's own on a full session
 * (adding and removing need a recent step-up), and logging in with one instead of a TOTP code.
 */
export function registerPasskeyRoutes(app: FastifyInstance, s: Services, resolve: Resolve): void {
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
      url: '/api/v1/auth/passkey/options',
      summary: 'Step 2 with a passkey: the challenge and allowed credentials for navigator.credentials.get()',
      tags: ['auth'],
      auth: 'mfa-pending',
      handler: async (req) => {
        const options = await s.passkeys.authenticationOptions(req.ctx);
        if (!options) {
          throw notFound('passkey');
        }
        return options;
      },
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/passkey/verify',
      summary: 'Step 2 with a passkey: the assertion; starts the session (new id)',
      tags: ['auth'],
      auth: 'none',
      body: assertionBody,
      handler: async (req, reply) => {
        const pending = req.raw.cookies[MFA_COOKIE];
        if (!pending) {
          throw new CustosError('CUSTOS_ERR_UNAUTHENTICATED', 'enter username and password first');
        }
        const r = await s.passkeys.secondFactor(req.raw.custosMeta, pending, {
          ...req.body,
          clientExtensionResults: req.body.clientExtensionResults ?? {},
        } as AuthenticationResponseJSON);
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
      url: '/api/v1/auth/passkeys/options',
      summary: 'Adding a passkey: options for navigator.credentials.create() (needs a recent step-up)',
      tags: ['auth'],
      auth: 'session',
      handler: async (req) => s.passkeys.registrationOptions(req.ctx, await currentSession(req.raw)),
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/api/v1/auth/passkeys',
      summary: "Adding a passkey: the authenticator's attestation; stores the credential",
      tags: ['auth'],
      auth: 'session',
      body: registrationBody,
      handler: async (req, reply) => {
        const r = await s.passkeys.verifyRegistration(req.ctx, await currentSession(req.raw), {
          ...req.body,
          clientExtensionResults: req.body.clientExtensionResults ?? {},
        } as RegistrationResponseJSON);
        if (!r.ok) {
          throw validationError('body', 'the passkey could not be verified; start again');
        }
        return reply.code(201).send({ passkey: r.passkey });
      },
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/api/v1/auth/passkeys',
      summary: "The caller's passkeys (handle, added, transports)",
      tags: ['auth'],
      auth: 'session',
      handler: async (req) => ({ passkeys: await s.passkeys.list(req.ctx) }),
    },
    resolve,
  );

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/api/v1/auth/passkeys/:id',
      summary: "Removes one of the caller's own passkeys (needs a recent step-up)",
      tags: ['auth'],
      auth: 'session',
      params: z.object({ id: z.string().regex(/^[0-9a-f]{32}$/, 'must be a passkey handle') }),
      handler: async (req, reply) => {
        if (!(await s.passkeys.remove(req.ctx, await currentSession(req.raw), req.params.id))) {
          throw notFound('passkey');
        }
        return reply.code(204).send();
      },
    },
    resolve,
  );
}
