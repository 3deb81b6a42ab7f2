import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { isCustosError, validationError } from '../errors.ts';

/** Who may call a route: nobody logged in, a half-logged-in user (between factors), or a full session. */
export type Auth = 'none' | 'mfa-pending' | 'session';

export interface RouteSpec<B extends z.ZodType, P extends z.ZodType> {
  readonly method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';
  readonly url: string;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly auth: Auth;
  /** Roles allowed (any of them); empty means any authenticated user. Deny by default otherwise. */
  readonly roles?: readonly string[];
  /** A sensitive action: needs a re-authentication within the last 5 minutes (step-up). */
  readonly stepUp?: boolean;
  readonly body?: B;
  readonly params?: P;
  readonly handler: (req: RouteRequest<z.infer<B>, z.infer<P>>, reply: FastifyReply) => Promise<unknown>;
}

export interface RouteRequest<B, P> {
  readonly raw: FastifyRequest;
  readonly body: B;
  readonly params: P;
  /** Set for `session` routes: the frozen context the gate and services take. */
  readonly ctx: AccessContext;
}

/** Builds the request's AccessContext for a route's access rule (see server.ts). */
export type Resolve = (
  req: FastifyRequest,
  auth: Auth,
  roles: readonly string[] | undefined,
  stepUp?: boolean,
) => Promise<AccessContext | undefined>;

/** Parses with zod; a failure is a 400 naming the field (`body.password: must be …`). */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, prefix: string): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) {
    return r.data;
  }
  const issue = r.error.issues[0];
  const field = [prefix, ...(issue?.path ?? []).map(String)].join('.');
  throw validationError(field, issue?.message ?? 'is invalid');
}

/**
 * Registers a route with its input schemas (zod, converted to JSON Schema for the OpenAPI
 * document) and its access rule. Validation runs in zod, not ajv, so every 400 has the same shape.
 */
export function defineRoute<B extends z.ZodType = z.ZodUndefined, P extends z.ZodType = z.ZodUndefined>(
  app: FastifyInstance,
  spec: RouteSpec<B, P>,
  resolveCtx: Resolve,
): void {
  app.route({
    method: spec.method,
    url: spec.url,
    schema: {
      summary: spec.summary,
      tags: [...spec.tags],
      ...(spec.body ? { body: z.toJSONSchema(spec.body, { target: 'draft-2020-12' }) } : {}),
      ...(spec.params ? { params: z.toJSONSchema(spec.params, { target: 'draft-2020-12' }) } : {}),
    },
    handler: async (req, reply) => {
      const ctx = await resolveCtx(req, spec.auth, spec.roles, spec.stepUp ?? false);
      const body = spec.body ? parseInput(spec.body, req.body, 'body') : undefined;
      const params = spec.params ? parseInput(spec.params, req.params, 'params') : undefined;
      return spec.handler(
        { raw: req, body, params, ctx: ctx as AccessContext } as RouteRequest<z.infer<B>, z.infer<P>>,
        reply,
      );
    },
  });
}

/**
 * The gate names a bad field as its own input sees it (`identity.name.family`, `consent.denyUsers`,
 * `userId`); the client should see where it is in the request (`body.identity.name.family`).
 */
export async function named<T>(call: Promise<T>, rename: (field: string) => string): Promise<T> {
  try {
    return await call;
  } catch (e) {
    if (isCustosError(e, 'CUSTOS_ERR_VALIDATION') && e.field !== undefined) {
      const problem = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
      throw validationError(rename(e.field), problem);
    }
    throw e;
  }
}
export const inBody = (f: string) => `body.${f}`;
