import { parseArgs } from 'node:util';
import { CustosError } from '../errors.ts';

/** Exit codes: 0 done, 1 failed, 2 usage or input error (one line on stderr, nothing changed). */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}

export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Secrets a command asks for (password, code, passphrase) come from here, never from a flag. */
  readonly stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

/**
 * Maps an error to one line on stderr and an exit code. Unknown errors print only their class:
 * a driver's message can quote row values, and no health data may reach a terminal or a log.
 */
export function reportError(io: Io, e: unknown): number {
  if (e instanceof UsageError) {
    io.stderr.write(`custos: ${e.message} (see custos --help)\n`);
    return EXIT_USAGE;
  }
  if (e instanceof CustosError) {
    io.stderr.write(`custos: ${e.message}\n`);
    return e.code === 'CUSTOS_ERR_IMPORT' || e.code === 'CUSTOS_ERR_VALIDATION' ? EXIT_USAGE : EXIT_FAILED;
  }
  const name = e instanceof Error ? e.name : typeof e;
  const code = (e as { code?: unknown })?.code;
  io.stderr.write(
    `custos: internal error (${name}${typeof code === 'string' ? ` ${code}` : ''}); details are withheld because they may quote stored data\n`,
  );
  return EXIT_FAILED;
}

/** A one-line progress bar on a terminal; nothing when stderr is not one. */
export function progress(io: Io, render: (done: number, total: number) => string, total: number) {
  let done = 0;
  let last = 0;
  const tty = Boolean(io.stderr.isTTY);
  return {
    tick(n = 1) {
      done += n;
      const now = Date.now();
      if (tty && (now - last > 100 || done === total)) {
        last = now;
        io.stderr.write(`\r${render(done, total)}`);
      }
    },
    end() {
      if (tty) {
        io.stderr.write('\n');
      }
    },
  };
}

/** `node:util` parseArgs (strict) with at most `positionals` positional arguments; a mistake is a UsageError (exit 2). */
export function parseOptions<T extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(
  args: string[],
  options: T,
  positionals = 0,
) {
  try {
    const r = parseArgs({ args, options, allowPositionals: positionals > 0, strict: true });
    if (r.positionals.length > positionals) {
      throw new UsageError(`unexpected argument '${r.positionals[positionals]}'`);
    }
    return r;
  } catch (e) {
    throw e instanceof UsageError
      ? e
      : new UsageError((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}
