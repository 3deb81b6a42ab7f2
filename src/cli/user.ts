import { randomUUID } from 'node:crypto';
import { systemContext } from '../access/context.ts';
import type { Config } from '../config/config.ts';
import { buildServices } from '../http/services.ts';
import { securityContext, securityEvent } from '../identity/events.ts';
import { normalizeUsername } from '../identity/usernames.ts';
import { EXIT_OK, type Io, parseOptions, UsageError } from './output.ts';
import { withCustos } from './session.ts';

const link = (config: Config, token: string) => `https://${config.host}:${config.port}/enroll#${token}`;

/**
 * `custos user add NAME --role ROLE[,ROLE]` prints a one-time enrollment link (24 h), never a
 * password; `disable`, `enable`, `reset` (new link), `unlock`, `list`. Run by the operator as
 * the `system` actor; every change is audited.
 */
export async function user(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const parsed = parseOptions(rest, { role: { type: 'string' }, 'family-name': { type: 'string' } }, 1);
  const name = parsed.positionals[0];
  if (sub !== 'list' && !name) {
    throw new UsageError(`user ${sub ?? ''} needs a NAME`.replace('  ', ' '));
  }
  return withCustos(config, io, async (c) => {
    const s = buildServices(c);
    const ctx = systemContext({ practiceId: c.practiceId, purpose: 'operations', requestId: randomUUID() });
    const find = async () => {
      const u = await s.accounts.findByUsername(c.practiceId, normalizeUsername(name ?? ''));
      if (!u) {
        throw new UsageError(`no user named ${normalizeUsername(name ?? '')}`);
      }
      return u;
    };
    switch (sub) {
      case 'add': {
        if (!parsed.values.role) {
          throw new UsageError(
            'user add needs --role ROLE (admin, clinician, nurse, frontdesk, billing, privacy_officer)',
          );
        }
        const r = await s.accounts.add(ctx, {
          username: name,
          roles: parsed.values.role,
          ...(parsed.values['family-name'] ? { familyName: parsed.values['family-name'] } : {}),
        });
        io.stdout.write(
          `enrollment link for ${r.username} (valid until ${r.expiresAt.toISOString()}, once):\n${link(config, r.token)}\n`,
        );
        return EXIT_OK;
      }
      case 'reset': {
        const r = await s.accounts.reset(ctx, (await find()).id);
        io.stdout.write(
          `new enrollment link (valid until ${r.expiresAt.toISOString()}, once):\n${link(config, r.token)}\n`,
        );
        return EXIT_OK;
      }
      case 'roles': {
        if (!parsed.values.role) {
          throw new UsageError('user roles needs --role ROLE[,ROLE]');
        }
        await s.accounts.setRoles(ctx, (await find()).id, parsed.values.role);
        io.stdout.write(
          `custos: ${normalizeUsername(name ?? '')} now has roles ${parsed.values.role}; their sessions ended\n`,
        );
        return EXIT_OK;
      }
      case 'disable':
      case 'enable':
      case 'unlock':
        await s.accounts[sub](ctx, (await find()).id);
        io.stdout.write(
          `custos: ${sub === 'unlock' ? 'unlocked' : `${sub}d`} ${normalizeUsername(name ?? '')}\n`,
        );
        return EXIT_OK;
      case 'list':
        for (const u of await s.accounts.list(c.practiceId)) {
          io.stdout.write(
            `${u.username}\t${u.roles.join(',')}\t${u.status}\t${u.lastLoginAt?.toISOString() ?? 'never'}\n`,
          );
        }
        return EXIT_OK;
      default:
        throw new UsageError('user needs one of: add, roles, disable, enable, reset, unlock, list');
    }
  });
}

/** `custos guard blocks [--lift ADDRESS]`: list blocked addresses, or lift one (audited). */
export async function guard(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'blocks') {
    throw new UsageError('guard needs: blocks [--lift ADDRESS]');
  }
  const { values } = parseOptions(rest, { lift: { type: 'string' } });
  return withCustos(config, io, async (c) => {
    const s = buildServices(c);
    if (values.lift) {
      const n = await s.blocks.lift(values.lift, 'system');
      await securityEvent(
        c.database.db,
        securityContext(
          { practiceId: c.practiceId, clientAddress: 'cli', userAgentHash: null, requestId: randomUUID() },
          { id: 'system', kind: 'system' },
        ),
        {
          action: 'ip-unblocked',
          resourceType: 'address',
          resourceId: values.lift,
          outcome: n > 0 ? 'success' : 'denied',
        },
        new Date(),
      );
      io.stdout.write(
        n > 0 ? `custos: lifted the block of ${values.lift}\n` : `custos: ${values.lift} is not blocked\n`,
      );
      return n > 0 ? EXIT_OK : 1;
    }
    for (const b of await s.blocks.active()) {
      io.stdout.write(`${b.address}\t${b.reason}\tuntil ${b.blockedUntil.toISOString()}\n`);
    }
    return EXIT_OK;
  });
}
