import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type ParsedAttachment, parseMessage } from './eml.ts';

/**
 * The outbox: where notifications go when no mail relay is configured (the embedded mode,
 * development, tests). One RFC 5322 `.eml` file per message, readable by any mail client.
 * The folder is 0700 and each file 0600: a message holds a patient's address.
 */

/** Writes one message atomically (temp name, fsync, rename); returns the file's path. */
export async function writeOutboxMessage(
  dir: string,
  message: Buffer,
  now: Date = new Date(),
): Promise<string> {
  await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.promises.chmod(dir, 0o700);
  const stamp = now.toISOString().replace(/[-:.]/g, '');
  const name = `${stamp}-${randomBytes(8).toString('hex')}.eml`;
  const final = path.join(dir, name);
  // A dot name without the .eml suffix: readOutbox never lists a file that is still being written.
  const temp = path.join(dir, `.${name}.tmp`);
  const handle = await fs.promises.open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(message);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fs.promises.rm(temp, { force: true });
    throw e;
  }
  await handle.close();
  await fs.promises.rename(temp, final);
  return final;
}

export interface OutboxMessage {
  /** Path of the `.eml` file. */
  readonly file: string;
  readonly messageId: string | undefined;
  readonly from: string | undefined;
  readonly to: string | undefined;
  readonly subject: string | undefined;
  readonly date: string | undefined;
  readonly text: string | undefined;
  readonly html: string | undefined;
  readonly attachments: readonly ParsedAttachment[];
  readonly headers: ReadonlyMap<string, string>;
  /** The file as written. */
  readonly raw: string;
}

/**
 * Lists and parses the outbox's `.eml` files, oldest first (the names start with a UTC time
 * stamp). A missing folder is an empty outbox.
 * @example const [mail] = await readOutbox(path.join(config.dataDir, 'outbox'));
 */
export async function readOutbox(dir: string): Promise<OutboxMessage[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return [];
    }
    throw e;
  }
  const files = names.filter((n) => n.endsWith('.eml') && !n.startsWith('.')).sort();
  const messages: OutboxMessage[] = [];
  for (const name of files) {
    const file = path.join(dir, name);
    const raw = await fs.promises.readFile(file, 'utf8');
    const parsed = parseMessage(raw);
    const h = parsed.headers;
    messages.push({
      file,
      messageId: h.get('message-id'),
      from: h.get('from'),
      to: h.get('to'),
      subject: h.get('subject'),
      date: h.get('date'),
      text: parsed.text,
      html: parsed.html,
      attachments: parsed.attachments,
      headers: h,
      raw,
    });
  }
  return messages;
}
